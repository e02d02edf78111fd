// SnapshotDb: the disk-snapshot records in $MOAT_HOME/moat.db.
//
//   snapshots  id, unique name, state, creation time, and the rest of
//              SnapshotInfo (source, root, sizes, digest, command) as JSON
//
// A snapshot's disk is snapshots/<id>/upper.ext4. The record comes first, in
// state "creating", while its creator holds snapshots/<id>/op.lock; it says
// "ready" only once the disk is complete and synced. A "creating" record
// whose lock is free belongs to a create that died: the settling step
// (snapshots.cpp) removes it with its directory, so nobody ever sees half a
// snapshot.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "moat/snapshots.h"
#include "store/sqlite.h"
#include "util/result.h"

namespace moat::sandbox {

inline constexpr const char* kSnapshotCreating = "creating";
inline constexpr const char* kSnapshotReady = "ready";

struct SnapshotRecord {
  SnapshotInfo info;  // used_by is not stored: it is the sandboxes that name it
  std::string state;
  std::string lower_fs;  // erofs | ext4, as the source booted its lower
};

class SnapshotDb {
 public:
  static Result<std::unique_ptr<SnapshotDb>> open(const std::string& moat_home);

  // EEXIST (code) when the name is taken.
  Status insert(const SnapshotRecord& r);
  Status update(const SnapshotRecord& r);
  // By id, name, or a unique id prefix (at least 4 characters).
  Result<std::optional<SnapshotRecord>> find(const std::string& id_or_name);
  Result<std::vector<SnapshotRecord>> list();
  Status remove(const std::string& id);

 private:
  explicit SnapshotDb(std::unique_ptr<store::SqliteDb> db) : db_(std::move(db)) {}
  std::unique_ptr<store::SqliteDb> db_;
};

}  // namespace moat::sandbox
