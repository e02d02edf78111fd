#include "sandbox/snapshot_restore.h"

#include <sys/stat.h>

#include <cerrno>

#include "sandbox/memory_snapshot.h"
#include "sandbox/snapshot_store.h"
#include "store/disk_digest.h"

namespace moat::sandbox {
namespace {

// A damaged disk must not boot: a truncated or changed file gives another
// digest than the one recorded when the snapshot was made.
Status check_disk(const SnapshotStore& store, const SnapshotRecord& s) {
  std::string disk = snapshot_disk_path(store.home, s.info.id);
  struct stat st {};
  if (::stat(disk.c_str(), &st) != 0) return errno_error("snapshot " + s.info.name + ": its disk " + disk);
  std::uint64_t expected = s.info.disk_size_mib << 20;
  if (static_cast<std::uint64_t>(st.st_size) != expected)
    return make_error("snapshot " + s.info.name + " is damaged: its disk is " + std::to_string(st.st_size) +
                          " bytes, not " + std::to_string(expected) + " (truncated?)",
                      EIO);
  MOAT_ASSIGN_OR_RETURN(auto digest, store::disk_content_digest(disk));
  if (digest != s.info.content_digest)
    return make_error("snapshot " + s.info.name + " is damaged: its disk's contents (" + digest +
                          ") are not those recorded when it was made (" + s.info.content_digest + ")",
                      EIO);
  return ok_status();
}

// The options of the new sandbox: the caller's, with the root taken from the
// snapshot and its command as the default.
Result<SandboxOptions> options_from(const SandboxOptions& o, const SnapshotRecord& s) {
  if (!o.image.empty() || !o.rootfs_dir.empty() || !o.rootfs_image.empty() || o.writable_root)
    return make_error("a sandbox made from a snapshot has the snapshot's root: give no image, --rootfs-dir, "
                      "--rootfs-image or --writable-root",
                      EINVAL);
  SandboxOptions e = o;
  e.from_snapshot.clear();
  if (!s.info.image_digest.empty()) {
    // By digest: the tag may point elsewhere by now; the snapshot pins this one.
    e.image = s.info.image_digest;
    e.pull = PullPolicy::kNever;
  } else {
    if (s.info.lower_path.empty()) return make_error("snapshot " + s.info.name + " records no root", EIO);
    struct stat st {};
    if (::stat(s.info.lower_path.c_str(), &st) != 0)
      return errno_error("snapshot " + s.info.name + ": its root filesystem " + s.info.lower_path);
    e.rootfs_image = s.info.lower_path;
  }
  if (o.command.empty() && !o.entrypoint) {
    e.entrypoint = std::vector<std::string>{};
    e.command = s.info.command;
  }
  e.disk_size_mib = s.info.disk_size_mib;
  return e;
}

}  // namespace

Result<SandboxInfo> create_from_snapshot(Manager& m, const SandboxOptions& o, std::string* accel_reason) {
  MOAT_ASSIGN_OR_RETURN(auto store, SnapshotStore::open());
  MOAT_ASSIGN_OR_RETURN(auto found, store.find_ready(o.from_snapshot));
  // Held through the create: the snapshot is not removed while it is read,
  // and the new sandbox's record (naming it) exists before a removal looks.
  MOAT_ASSIGN_OR_RETURN(auto lock, FileLock::acquire(snapshot_lock_path(store.home, found.info.id)));
  MOAT_ASSIGN_OR_RETURN(auto again, store.db->find(found.info.id));
  if (!again || again->info.id != found.info.id) return make_error("no such snapshot: " + o.from_snapshot, ENOENT);
  const SnapshotRecord& s = *again;
  MOAT_ASSIGN_OR_RETURN(auto options, options_from(o, s));
  MOAT_TRY(fit_options_to_memory_snapshot(store.home, s, options));
  MOAT_TRY(check_disk(store, s));
  UpperSource upper;
  upper.disk = snapshot_disk_path(store.home, s.info.id);
  upper.disk_size_mib = s.info.disk_size_mib;
  upper.image_display = s.info.image;
  upper.snapshot_id = s.info.id;
  MOAT_ASSIGN_OR_RETURN(auto info, create_record(m, options, accel_reason, &upper));
  // A memory snapshot's child goes on from its state at its first start.
  if (Status given = give_memory_state(store.home, s, m.dir_of(info.id)); !given) {
    (void)remove_sandbox(info.id, true);
    return given.error();
  }
  return info;
}

}  // namespace moat::sandbox
