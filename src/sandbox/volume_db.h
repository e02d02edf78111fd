// VolumeDb: the named-volume records in $MOAT_HOME/moat.db.
//
//   volumes  unique name, creation time, labels (JSON)
//
// A volume's data is the directory volumes/<name>/data; the record is what
// makes it a volume (a directory without one is left over from a crash).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/sqlite.h"
#include "util/result.h"

namespace moat::sandbox {

struct VolumeRecord {
  std::string name;
  std::int64_t created_at = 0;
  std::map<std::string, std::string> labels;
};

class VolumeDb {
 public:
  static Result<std::unique_ptr<VolumeDb>> open(const std::string& moat_home);

  // EEXIST (code) when the name is taken.
  Status insert(const VolumeRecord& r);
  Result<std::optional<VolumeRecord>> find(const std::string& name);
  Result<std::vector<VolumeRecord>> list();
  Status remove(const std::string& name);

 private:
  explicit VolumeDb(std::unique_ptr<store::SqliteDb> db) : db_(std::move(db)) {}
  std::unique_ptr<store::SqliteDb> db_;
};

}  // namespace moat::sandbox
