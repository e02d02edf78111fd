#include "sandbox/snapshot_db.h"

#include <nlohmann/json.hpp>

#include "proto/text.h"

namespace moat::sandbox {
namespace {

using Json = nlohmann::json;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS snapshots (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  spec TEXT NOT NULL
);
)sql";

constexpr const char* kColumns = "id, name, state, created_at, spec";
constexpr std::size_t kMinPrefix = 4;

std::string spec_json(const SnapshotRecord& r) {
  const SnapshotInfo& i = r.info;
  Json labels = Json::object();
  for (const auto& [k, v] : i.labels) labels[k] = proto::bytes_to_json(v);
  Json j = {{"labels", std::move(labels)},
            {"source_id", i.source_id},
            {"source_name", i.source_name},
            {"image", proto::bytes_to_json(i.image)},
            {"image_digest", i.image_digest},
            {"lower_path", proto::bytes_to_json(i.lower_path)},
            {"lower_fs", r.lower_fs},
            {"disk_size_mib", i.disk_size_mib},
            {"allocated_bytes", i.allocated_bytes},
            {"content_digest", i.content_digest},
            {"command", proto::bytes_list_to_json(i.command)}};
  return proto::dump_lossy(j);
}

std::string text_field(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return {};
  return proto::bytes_from_json(*it).value_or(std::string());
}

// Our own JSON; a damaged spec is an error naming the snapshot, not a crash.
Result<SnapshotRecord> read_row(const store::Stmt& s) {
  SnapshotRecord r;
  r.info.id = s.text(0);
  r.info.name = s.text(1);
  r.state = s.text(2);
  r.info.created_at = s.integer(3);
  auto j = Json::parse(s.text(4), nullptr, false);
  if (!j.is_object()) return make_error("snapshot " + r.info.name + ": damaged record in the database", EIO);
  try {
    if (auto it = j.find("labels"); it != j.end() && it->is_object())
      for (const auto& [k, v] : it->items()) r.info.labels[k] = proto::bytes_from_json(v).value_or("");
    r.info.source_id = text_field(j, "source_id");
    r.info.source_name = text_field(j, "source_name");
    r.info.image = text_field(j, "image");
    r.info.image_digest = text_field(j, "image_digest");
    r.info.lower_path = text_field(j, "lower_path");
    r.lower_fs = text_field(j, "lower_fs");
    r.info.disk_size_mib = j.value("disk_size_mib", std::uint64_t{0});
    r.info.allocated_bytes = j.value("allocated_bytes", std::uint64_t{0});
    r.info.content_digest = text_field(j, "content_digest");
    if (auto it = j.find("command"); it != j.end())
      r.info.command = proto::bytes_list_from_json(*it).value_or(std::vector<std::string>{});
  } catch (const Json::exception& e) {
    return make_error("snapshot " + r.info.name + ": damaged record in the database: " + e.what(), EIO);
  }
  return r;
}

Result<std::vector<SnapshotRecord>> read_all(store::Stmt& s) {
  std::vector<SnapshotRecord> out;
  while (true) {
    MOAT_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    MOAT_ASSIGN_OR_RETURN(auto r, read_row(s));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<SnapshotDb>> SnapshotDb::open(const std::string& moat_home) {
  MOAT_ASSIGN_OR_RETURN(auto db, store::SqliteDb::open(moat_home + "/moat.db", kSchema));
  return std::unique_ptr<SnapshotDb>(new SnapshotDb(std::move(db)));
}

Status SnapshotDb::insert(const SnapshotRecord& r) {
  store::Stmt s(*db_, "INSERT INTO snapshots (id, name, state, created_at, spec) VALUES (?1, ?2, ?3, ?4, ?5)");
  MOAT_TRY(s.prepared());
  s.bind(1, r.info.id).bind(2, r.info.name).bind(3, r.state).bind(4, r.info.created_at).bind(5, spec_json(r));
  auto st = s.run();
  if (!st && st.error().code == EEXIST)
    return make_error("a snapshot named \"" + r.info.name + "\" already exists", EEXIST);
  return st;
}

Status SnapshotDb::update(const SnapshotRecord& r) {
  store::Stmt s(*db_, "UPDATE snapshots SET state = ?2, spec = ?3 WHERE id = ?1");
  MOAT_TRY(s.prepared());
  s.bind(1, r.info.id).bind(2, r.state).bind(3, spec_json(r));
  return s.run();
}

Result<std::optional<SnapshotRecord>> SnapshotDb::find(const std::string& id_or_name) {
  {
    store::Stmt s(*db_, (std::string("SELECT ") + kColumns + " FROM snapshots WHERE id = ?1 OR name = ?1").c_str());
    MOAT_TRY(s.prepared());
    s.bind(1, id_or_name);
    MOAT_ASSIGN_OR_RETURN(auto exact, read_all(s));
    // A name that is another snapshot's id: the id wins, as for sandboxes.
    for (auto& r : exact)
      if (r.info.id == id_or_name) return std::optional<SnapshotRecord>(std::move(r));
    if (!exact.empty()) return std::optional<SnapshotRecord>(std::move(exact.front()));
  }
  if (id_or_name.size() < kMinPrefix || id_or_name.find_first_not_of("0123456789abcdef") != std::string::npos)
    return std::optional<SnapshotRecord>{};
  store::Stmt s(*db_, (std::string("SELECT ") + kColumns + " FROM snapshots WHERE substr(id, 1, ?2) = ?1").c_str());
  MOAT_TRY(s.prepared());
  s.bind(1, id_or_name).bind(2, static_cast<std::int64_t>(id_or_name.size()));
  MOAT_ASSIGN_OR_RETURN(auto matches, read_all(s));
  if (matches.size() > 1) return make_error("snapshot id prefix \"" + id_or_name + "\" is ambiguous", EINVAL);
  if (matches.empty()) return std::optional<SnapshotRecord>{};
  return std::optional<SnapshotRecord>(std::move(matches.front()));
}

Result<std::vector<SnapshotRecord>> SnapshotDb::list() {
  store::Stmt s(*db_, (std::string("SELECT ") + kColumns + " FROM snapshots ORDER BY created_at, name").c_str());
  MOAT_TRY(s.prepared());
  return read_all(s);
}

Status SnapshotDb::remove(const std::string& id) {
  store::Stmt s(*db_, "DELETE FROM snapshots WHERE id = ?1");
  MOAT_TRY(s.prepared());
  s.bind(1, id);
  return s.run();
}

}  // namespace moat::sandbox
