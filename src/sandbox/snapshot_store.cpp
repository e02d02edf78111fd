#include "sandbox/snapshot_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <vector>

#include "sandbox/image_root.h"
#include "store/moat_home.h"
#include "store/tree_digest.h"
#include "util/unique_fd.h"
#include "util/runtime_settings.h"

namespace moat::sandbox {
namespace {

// A create makes the directory and takes its lock before it inserts the
// record: a directory this old with no record and a free lock is a leftover.
constexpr std::int64_t kOrphanAgeSeconds = 10;

Status settle_record(SnapshotStore& s, const SnapshotRecord& r) {
  if (r.state != kSnapshotCreating) return ok_status();
  MOAT_ASSIGN_OR_RETURN(auto lock, FileLock::try_acquire(snapshot_lock_path(s.home, r.info.id)));
  if (!lock) return ok_status();  // its create is still under way
  // Re-read under the lock: the create may have finished just now.
  MOAT_ASSIGN_OR_RETURN(auto again, s.db->find(r.info.id));
  if (!again || again->state != kSnapshotCreating) return ok_status();
  util::runtime_log(LogLevel::kInfo, "removing snapshot " + r.info.name + ": its create did not finish");
  return s.remove_everything(r);
}

Status remove_orphan_dirs(SnapshotStore& s) {
  std::string root = snapshots_dir(s.home);
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno == ENOENT ? ok_status() : errno_error("open " + root);
  MOAT_ASSIGN_OR_RETURN(auto names, store::sorted_entries(fd.get(), root));
  for (const auto& id : names) {
    std::string dir = root + "/" + id;
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || ::time(nullptr) - st.st_mtime < kOrphanAgeSeconds)
      continue;
    MOAT_ASSIGN_OR_RETURN(auto record, s.db->find(id));
    if (record && record->info.id == id) continue;
    MOAT_ASSIGN_OR_RETURN(auto lock, FileLock::try_acquire(snapshot_lock_path(s.home, id)));
    if (!lock) continue;
    MOAT_ASSIGN_OR_RETURN(auto again, s.db->find(id));
    if (again && again->info.id == id) continue;
    MOAT_TRY(store::remove_tree(dir));
  }
  return ok_status();
}

}  // namespace

std::string snapshots_dir(const std::string& home) { return home + "/snapshots"; }
std::string snapshot_dir(const std::string& home, const std::string& id) { return snapshots_dir(home) + "/" + id; }
std::string snapshot_disk_path(const std::string& home, const std::string& id) {
  return snapshot_dir(home, id) + "/upper.ext4";
}
std::string snapshot_lock_path(const std::string& home, const std::string& id) {
  return snapshot_dir(home, id) + "/op.lock";
}
std::string image_user_of_snapshot(const std::string& id) { return "snapshot:" + id; }

Result<SnapshotStore> SnapshotStore::open() {
  SnapshotStore s;
  MOAT_ASSIGN_OR_RETURN(s.home, store::moat_home());
  MOAT_TRY(store::make_dirs(snapshots_dir(s.home), 0700));
  MOAT_ASSIGN_OR_RETURN(s.db, SnapshotDb::open(s.home));
  MOAT_ASSIGN_OR_RETURN(auto all, s.db->list());
  for (const auto& r : all) MOAT_TRY(settle_record(s, r));
  MOAT_TRY(remove_orphan_dirs(s));
  return s;
}

Result<SnapshotRecord> SnapshotStore::find_ready(const std::string& id_or_name) {
  MOAT_ASSIGN_OR_RETURN(auto found, db->find(id_or_name));
  if (!found) return make_error("no such snapshot: " + id_or_name, ENOENT);
  if (found->state != kSnapshotReady) return make_error("snapshot " + found->info.name + " is still being made", EBUSY);
  return std::move(*found);
}

Status SnapshotStore::remove_everything(const SnapshotRecord& r) {
  MOAT_TRY(store::remove_tree(snapshot_dir(home, r.info.id)));
  if (!r.info.image_digest.empty()) MOAT_TRY(release_image(home, image_user_of_snapshot(r.info.id)));
  return db->remove(r.info.id);
}

}  // namespace moat::sandbox
