#include "sandbox/volume_db.h"

#include <cerrno>

#include <nlohmann/json.hpp>

#include "proto/text.h"

namespace moat::sandbox {
namespace {

using Json = nlohmann::json;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS volumes (
  name TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}'
);
)sql";

VolumeRecord read_row(const store::Stmt& s) {
  VolumeRecord r;
  r.name = s.text(0);
  r.created_at = s.integer(1);
  // Our own JSON; a damaged value only loses the labels.
  auto j = Json::parse(s.text(2), nullptr, false);
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it.value().is_string()) r.labels[it.key()] = it.value().get<std::string>();
  }
  return r;
}

}  // namespace

Result<std::unique_ptr<VolumeDb>> VolumeDb::open(const std::string& moat_home) {
  MOAT_ASSIGN_OR_RETURN(auto db, store::SqliteDb::open(moat_home + "/moat.db", kSchema));
  return std::unique_ptr<VolumeDb>(new VolumeDb(std::move(db)));
}

Status VolumeDb::insert(const VolumeRecord& r) {
  store::Stmt s(*db_, "INSERT INTO volumes (name, created_at, labels) VALUES (?1, ?2, ?3)");
  MOAT_TRY(s.prepared());
  s.bind(1, r.name).bind(2, r.created_at).bind(3, proto::dump_lossy(Json(r.labels)));
  auto st = s.run();
  if (!st && st.error().code == EEXIST) return make_error("volume \"" + r.name + "\" already exists", EEXIST);
  return st;
}

Result<std::optional<VolumeRecord>> VolumeDb::find(const std::string& name) {
  store::Stmt s(*db_, "SELECT name, created_at, labels FROM volumes WHERE name = ?1");
  MOAT_TRY(s.prepared());
  s.bind(1, name);
  MOAT_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<VolumeRecord>{};
  return std::optional<VolumeRecord>(read_row(s));
}

Result<std::vector<VolumeRecord>> VolumeDb::list() {
  store::Stmt s(*db_, "SELECT name, created_at, labels FROM volumes ORDER BY created_at, name");
  MOAT_TRY(s.prepared());
  std::vector<VolumeRecord> out;
  while (true) {
    MOAT_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(read_row(s));
  }
  return out;
}

Status VolumeDb::remove(const std::string& name) {
  store::Stmt s(*db_, "DELETE FROM volumes WHERE name = ?1");
  MOAT_TRY(s.prepared());
  s.bind(1, name);
  return s.run();
}

}  // namespace moat::sandbox
