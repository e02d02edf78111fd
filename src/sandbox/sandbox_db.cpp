#include "sandbox/sandbox_db.h"

#include <cerrno>
#include <ctime>

#include <nlohmann/json.hpp>

namespace moat {

std::string to_string(SandboxState s) {
  switch (s) {
    case SandboxState::kCreated: return "created";
    case SandboxState::kRunning: return "running";
    case SandboxState::kStopped: return "stopped";
    case SandboxState::kCrashed: return "crashed";
  }
  return "unknown";
}

namespace sandbox {
namespace {

using Json = nlohmann::json;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS sandboxes (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  started_at INTEGER NOT NULL DEFAULT 0,
  finished_at INTEGER NOT NULL DEFAULT 0,
  shim_pid INTEGER NOT NULL DEFAULT 0,
  spec TEXT NOT NULL
);
)sql";

constexpr const char* kColumns = "id, name, state, reason, created_at, started_at, finished_at, shim_pid, spec";

Json volumes_json(const SandboxInfo& i) {
  Json v = Json::array();
  for (const auto& m : i.volumes) v.push_back({{"source", m.source}, {"guest_path", m.guest_path}, {"read_only", m.read_only}});
  return v;
}

Json tmpfs_json(const SandboxInfo& i) {
  Json v = Json::array();
  for (const auto& t : i.tmpfs) v.push_back({{"guest_path", t.guest_path}, {"size_bytes", t.size_bytes}});
  return v;
}

std::string spec_json(const SandboxInfo& i) {
  Json j = {{"image", i.image},
            {"image_digest", i.image_digest},
            {"labels", i.labels},
            {"cpus", i.cpus},
            {"memory_mib", i.memory_mib},
            {"disk_size_mib", i.disk_size_mib},
            {"idle_timeout_s", i.idle_timeout_s},
            {"max_duration_s", i.max_duration_s},
            {"auto_remove", i.auto_remove},
            {"command", i.command},
            {"env", i.env},
            {"workdir", i.workdir},
            {"user", i.user},
            {"dir", i.dir},
            {"volumes", volumes_json(i)},
            {"tmpfs", tmpfs_json(i)}};
  return j.dump();
}

// The spec is our own JSON, but a damaged database must not crash a CLI.
Status read_spec(const std::string& text, SandboxInfo& i) {
  auto j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("sandbox " + i.id + ": damaged spec in the database");
  try {
    i.image = j.value("image", "");
    i.image_digest = j.value("image_digest", "");
    i.labels = j.value("labels", std::map<std::string, std::string>{});
    i.cpus = j.value("cpus", 1);
    i.memory_mib = j.value("memory_mib", 0);
    i.disk_size_mib = j.value("disk_size_mib", std::uint64_t{0});
    i.idle_timeout_s = j.value("idle_timeout_s", std::uint64_t{0});
    i.max_duration_s = j.value("max_duration_s", std::uint64_t{0});
    i.auto_remove = j.value("auto_remove", false);
    i.command = j.value("command", std::vector<std::string>{});
    i.env = j.value("env", std::vector<std::string>{});
    i.workdir = j.value("workdir", "");
    i.user = j.value("user", "");
    i.dir = j.value("dir", "");
    for (const auto& v : j.value("volumes", Json::array()))
      i.volumes.push_back({v.at("source").get<std::string>(), v.at("guest_path").get<std::string>(),
                           v.at("read_only").get<bool>()});
    for (const auto& t : j.value("tmpfs", Json::array()))
      i.tmpfs.push_back({t.at("guest_path").get<std::string>(), t.at("size_bytes").get<std::uint64_t>()});
  } catch (const Json::exception& e) {
    return make_error("sandbox " + i.id + ": damaged spec in the database: " + e.what());
  }
  return ok_status();
}

Result<SandboxRecord> read_row(const store::Stmt& s) {
  SandboxRecord r;
  r.info.id = s.text(0);
  r.info.name = s.text(1);
  r.state = s.text(2);
  r.info.reason = s.text(3);
  r.info.created_at = s.integer(4);
  r.info.started_at = s.integer(5);
  r.info.finished_at = s.integer(6);
  r.info.shim_pid = static_cast<int>(s.integer(7));
  MOAT_TRY(read_spec(s.text(8), r.info));
  if (r.state != kStateCreating) {
    MOAT_ASSIGN_OR_RETURN(r.info.state, parse_state(r.state));
  }
  return r;
}

}  // namespace

std::int64_t unix_now() { return static_cast<std::int64_t>(::time(nullptr)); }

Result<SandboxState> parse_state(const std::string& s) {
  for (auto st : {SandboxState::kCreated, SandboxState::kRunning, SandboxState::kStopped, SandboxState::kCrashed})
    if (to_string(st) == s) return st;
  return make_error("unknown sandbox state \"" + s + "\"");
}

Result<std::unique_ptr<SandboxDb>> SandboxDb::open(const std::string& moat_home) {
  MOAT_ASSIGN_OR_RETURN(auto db, store::SqliteDb::open(moat_home + "/moat.db", kSchema));
  return std::unique_ptr<SandboxDb>(new SandboxDb(std::move(db)));
}

Status SandboxDb::insert(const SandboxRecord& r) {
  store::Stmt s(*db_,
                "INSERT INTO sandboxes (id, name, state, reason, created_at, started_at, finished_at, shim_pid, spec)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  MOAT_TRY(s.prepared());
  s.bind(1, r.info.id).bind(2, r.info.name).bind(3, r.state).bind(4, r.info.reason);
  s.bind(5, r.info.created_at).bind(6, r.info.started_at).bind(7, r.info.finished_at);
  s.bind(8, static_cast<std::int64_t>(r.info.shim_pid)).bind(9, spec_json(r.info));
  auto st = s.run();
  if (!st && st.error().code == EEXIST) return make_error("the name \"" + r.info.name + "\" is already in use", EEXIST);
  return st;
}

Result<std::optional<SandboxRecord>> SandboxDb::find(const std::string& id_or_name) {
  // An id wins over a name that happens to look like one.
  std::string sql = std::string("SELECT ") + kColumns +
                    " FROM sandboxes WHERE id = ?1 OR name = ?1 ORDER BY (id = ?1) DESC LIMIT 1";
  store::Stmt s(*db_, sql.c_str());
  MOAT_TRY(s.prepared());
  s.bind(1, id_or_name);
  MOAT_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<SandboxRecord>{};
  MOAT_ASSIGN_OR_RETURN(auto r, read_row(s));
  return std::optional<SandboxRecord>(std::move(r));
}

Result<std::vector<SandboxRecord>> SandboxDb::list() {
  std::string sql = std::string("SELECT ") + kColumns + " FROM sandboxes ORDER BY created_at, rowid";
  store::Stmt s(*db_, sql.c_str());
  MOAT_TRY(s.prepared());
  std::vector<SandboxRecord> out;
  while (true) {
    MOAT_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    MOAT_ASSIGN_OR_RETURN(auto r, read_row(s));
    out.push_back(std::move(r));
  }
  return out;
}

Status SandboxDb::set_state(const std::string& id, const std::string& state, const std::string& reason, int shim_pid,
                            const char* time_column, std::int64_t time) {
  std::string sql = "UPDATE sandboxes SET state = ?2, reason = ?3, shim_pid = ?4";
  if (time_column) sql += std::string(", ") + time_column + " = ?5";
  sql += " WHERE id = ?1";
  store::Stmt s(*db_, sql.c_str());
  MOAT_TRY(s.prepared());
  s.bind(1, id).bind(2, state).bind(3, reason).bind(4, static_cast<std::int64_t>(shim_pid));
  if (time_column) s.bind(5, time);
  MOAT_TRY(s.run());
  if (db_->changes() == 0) return make_error("no such sandbox: " + id, ENOENT);
  return ok_status();
}

Status SandboxDb::update_spec(const SandboxInfo& info) {
  store::Stmt s(*db_, "UPDATE sandboxes SET spec = ?2 WHERE id = ?1");
  MOAT_TRY(s.prepared());
  s.bind(1, info.id).bind(2, spec_json(info));
  MOAT_TRY(s.run());
  if (db_->changes() == 0) return make_error("no such sandbox: " + info.id, ENOENT);
  return ok_status();
}

Status SandboxDb::mark_created(const std::string& id) {
  return set_state(id, to_string(SandboxState::kCreated), "", 0, nullptr, 0);
}

Status SandboxDb::mark_running(const std::string& id, int shim_pid, std::int64_t started_at) {
  return set_state(id, to_string(SandboxState::kRunning), "", shim_pid, "started_at", started_at);
}

Status SandboxDb::mark_finished(const std::string& id, SandboxState state, const std::string& reason,
                                std::int64_t finished_at) {
  return set_state(id, to_string(state), reason, 0, "finished_at", finished_at);
}

Status SandboxDb::remove(const std::string& id) {
  store::Stmt s(*db_, "DELETE FROM sandboxes WHERE id = ?1");
  MOAT_TRY(s.prepared());
  s.bind(1, id);
  return s.run();
}

}  // namespace sandbox
}  // namespace moat
