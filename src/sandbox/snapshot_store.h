// Where disk snapshots live and how a half-made one is cleaned up.
//
//   $MOAT_HOME/snapshots/<id>/upper.ext4   the disk
//   $MOAT_HOME/snapshots/<id>/op.lock      held by its create, a restore
//                                          reading it, or its removal
#pragma once

#include <memory>
#include <string>

#include "sandbox/file_lock.h"
#include "sandbox/snapshot_db.h"

namespace moat::sandbox {

std::string snapshots_dir(const std::string& home);
std::string snapshot_dir(const std::string& home, const std::string& id);
std::string snapshot_disk_path(const std::string& home, const std::string& id);
std::string snapshot_lock_path(const std::string& home, const std::string& id);
std::string image_user_of_snapshot(const std::string& id);

struct SnapshotStore {
  std::string home;
  std::unique_ptr<SnapshotDb> db;

  // Opens the records and settles them: a "creating" record whose lock is
  // free (its create died) is removed with its directory and image pin, and
  // so is a directory no record names (older than a few seconds, lock free).
  static Result<SnapshotStore> open();

  // A ready snapshot by id, name or id prefix: ENOENT if none, EBUSY while
  // it is still being made.
  Result<SnapshotRecord> find_ready(const std::string& id_or_name);

  // Removes the directory, the image pin and the record (in that order: the
  // record goes last, so a failure half-way leaves a record to retry with).
  Status remove_everything(const SnapshotRecord& r);
};

}  // namespace moat::sandbox
