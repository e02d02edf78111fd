// Disk snapshots (include/moat/snapshots.h): create, list, inspect, remove.
// Restoring is snapshot_restore.cpp; forks are sandbox_fork.cpp.
#include "moat/snapshots.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/image_root.h"
#include "sandbox/lifecycle.h"
#include "sandbox/memory_snapshot.h"
#include "sandbox/object_name.h"
#include "sandbox/snapshot_store.h"
#include "sandbox/upper_copy.h"
#include "store/disk_digest.h"
#include "store/moat_home.h"

namespace moat {
namespace sandbox {
namespace {

constexpr Duration kMaxFreeze = std::chrono::minutes(10);

Status validate(const std::string& name, const SnapshotOptions& o) {
  if (!valid_object_name(name))
    return make_error("invalid snapshot name \"" + name + "\": use letters, digits, '_', '.', '-' (at most 64, "
                      "starting with a letter or digit)", EINVAL);
  if (o.freeze_timeout < std::chrono::seconds(1) || o.freeze_timeout > kMaxFreeze)
    return make_error("the freeze timeout must be between 1 s and 10 minutes", EINVAL);
  return validate_labels(o.labels);
}

SnapshotRecord record_of(const SandboxRecord& src, const std::string& name, const SnapshotOptions& o) {
  SnapshotRecord s;
  s.state = kSnapshotCreating;
  s.info.id = store::random_id(12);
  s.info.name = name;
  s.info.created_at = unix_now();
  s.info.labels = o.labels;
  s.info.source_id = src.info.id;
  s.info.source_name = src.info.name;
  s.info.image = src.info.image;
  s.info.image_digest = src.info.image_digest;
  if (src.info.image_digest.empty() && !src.vm.disks.empty()) s.info.lower_path = src.vm.disks[0].path;
  s.lower_fs = src.vm.lower_fs;
  s.info.disk_size_mib = src.info.disk_size_mib;
  s.info.command = src.info.command;
  return s;
}

// The copy, its digest and size, then the record says ready. The record
// already exists (state creating) and its lock is held.
Status fill_snapshot(SnapshotStore& store, Manager& m, const SandboxRecord& src, SnapshotRecord& s,
                     const SnapshotOptions& o) {
  if (!s.info.image_digest.empty()) MOAT_TRY(pin_image(store.home, s.info.image_digest, image_user_of_snapshot(s.info.id)));
  std::string disk = snapshot_disk_path(store.home, s.info.id);
  if (o.memory) {
    MOAT_TRY(save_memory_snapshot(m, src, store.home, s, disk));
  } else {
    MOAT_TRY(copy_upper_disk(m, src, disk, o.freeze_timeout));
  }
  MOAT_ASSIGN_OR_RETURN(s.info.content_digest, store::disk_content_digest(disk));
  MOAT_ASSIGN_OR_RETURN(s.info.allocated_bytes, store::allocated_bytes(disk));
  if (::chmod(disk.c_str(), 0400) != 0) return errno_error("chmod " + disk);
  s.state = kSnapshotReady;
  return store.db->update(s);
}

Result<std::vector<std::string>> users_of(Manager& m, const std::string& snapshot_id) {
  MOAT_ASSIGN_OR_RETURN(auto all, m.db->list());
  std::vector<std::string> names;
  for (const auto& r : all)
    if (r.info.snapshot == snapshot_id && r.state != kStateCreating) names.push_back(r.info.name);
  return names;
}

Result<SnapshotInfo> info_of(Manager& m, SnapshotRecord r) {
  MOAT_ASSIGN_OR_RETURN(r.info.used_by, users_of(m, r.info.id));
  note_memory_snapshot(m.home, r.info);
  return std::move(r.info);
}

}  // namespace
}  // namespace sandbox

Result<SnapshotInfo> create_snapshot(const std::string& sandbox_name, const std::string& name,
                                     const SnapshotOptions& o) {
  using namespace sandbox;
  MOAT_TRY(validate(name, o));
  MOAT_ASSIGN_OR_RETURN(auto store, SnapshotStore::open());
  MOAT_ASSIGN_OR_RETURN(auto m, Manager::open());
  // Held to the end: the sandbox neither starts, stops nor goes away while
  // its disk is copied.
  MOAT_ASSIGN_OR_RETURN(auto locked, lock_sandbox(m, sandbox_name));
  const SandboxRecord& src = locked.record;
  if (src.state == kStateCreating) return make_error("sandbox " + sandbox_name + " is still being created", EBUSY);
  MOAT_TRY(upper_disk_of(src));
  SnapshotRecord s = record_of(src, name, o);
  std::string dir = snapshot_dir(store.home, s.info.id);
  if (::mkdir(dir.c_str(), 0700) != 0) return errno_error("create " + dir);
  auto lock = FileLock::acquire(snapshot_lock_path(store.home, s.info.id));
  if (!lock) {
    (void)store::remove_tree(dir);
    return lock.error();
  }
  if (auto st = store.db->insert(s); !st) {
    (void)store::remove_tree(dir);
    return st.error();
  }
  if (auto st = fill_snapshot(store, m, src, s, o); !st) {
    (void)store.remove_everything(s);
    return st.error().wrap("snapshot " + name + " of sandbox " + src.info.name);
  }
  return info_of(m, std::move(s));
}

Result<std::vector<SnapshotInfo>> list_snapshots() {
  using namespace sandbox;
  MOAT_ASSIGN_OR_RETURN(auto store, SnapshotStore::open());
  MOAT_ASSIGN_OR_RETURN(auto m, Manager::open());
  MOAT_ASSIGN_OR_RETURN(auto all, store.db->list());
  std::vector<SnapshotInfo> out;
  for (auto& r : all) {
    if (r.state != kSnapshotReady) continue;
    MOAT_ASSIGN_OR_RETURN(auto info, info_of(m, std::move(r)));
    out.push_back(std::move(info));
  }
  return out;
}

Result<SnapshotInfo> inspect_snapshot(const std::string& id_or_name) {
  using namespace sandbox;
  MOAT_ASSIGN_OR_RETURN(auto store, SnapshotStore::open());
  MOAT_ASSIGN_OR_RETURN(auto m, Manager::open());
  MOAT_ASSIGN_OR_RETURN(auto r, store.find_ready(id_or_name));
  return info_of(m, std::move(r));
}

Status remove_snapshot(const std::string& id_or_name) {
  using namespace sandbox;
  MOAT_ASSIGN_OR_RETURN(auto store, SnapshotStore::open());
  MOAT_ASSIGN_OR_RETURN(auto m, Manager::open());
  MOAT_ASSIGN_OR_RETURN(auto r, store.find_ready(id_or_name));
  // Under its lock: a create from it either finished (and is a user now) or
  // has not begun (and will not find it).
  MOAT_ASSIGN_OR_RETURN(auto lock, FileLock::acquire(snapshot_lock_path(store.home, r.info.id)));
  MOAT_ASSIGN_OR_RETURN(auto users, users_of(m, r.info.id));
  if (!users.empty()) {
    std::string list;
    for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
    return make_error("snapshot " + r.info.name + " is in use by sandbox" + (users.size() > 1 ? "es " : " ") + list +
                          "; remove them first",
                      EBUSY);
  }
  return store.remove_everything(r);
}

}  // namespace moat
