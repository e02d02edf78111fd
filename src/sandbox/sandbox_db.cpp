#include "sandbox/sandbox_db.h"

#include "shim_contract/event_table.h"

#include <cerrno>
#include <ctime>

#include <nlohmann/json.hpp>

#include "proto/text.h"
#include "shim_contract/event_table.h"
#include "shim_contract/network_json.h"
#include "vm/accel.h"

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
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time INTEGER NOT NULL,
  sandbox_id TEXT NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT ''
);
)sql";

// The event a change of state tells of, if any: a start is told once the
// shim runs (its pid known), not when the record first says running.
std::optional<SandboxEventKind> event_of(const std::string& state, int shim_pid) {
  if (state == to_string(SandboxState::kCreated)) return SandboxEventKind::kCreated;
  if (state == to_string(SandboxState::kRunning)) {
    if (shim_pid == 0) return std::nullopt;
    return SandboxEventKind::kStarted;
  }
  if (state == to_string(SandboxState::kStopped)) return SandboxEventKind::kStopped;
  if (state == to_string(SandboxState::kCrashed)) return SandboxEventKind::kCrashed;
  return std::nullopt;
}

std::optional<SandboxEventKind> parse_event_kind(const std::string& s) {
  for (auto k : {SandboxEventKind::kCreated, SandboxEventKind::kStarted, SandboxEventKind::kStopped,
                 SandboxEventKind::kCrashed, SandboxEventKind::kRemoved, SandboxEventKind::kNetworkDenied})
    if (s == to_string(k)) return k;
  return std::nullopt;
}

constexpr const char* kColumns = "id, name, state, reason, created_at, started_at, finished_at, shim_pid, spec";

// Argv, environment, paths and user names are bytes, and JSON text is UTF-8:
// every such field is kept in the reversible form of proto/text.h, so a
// record gives back exactly the bytes it was given.
using proto::bytes_from_json;
using proto::bytes_list_from_json;
using proto::bytes_list_to_json;
using proto::bytes_to_json;

Json volumes_json(const SandboxInfo& i) {
  Json v = Json::array();
  for (const auto& m : i.volumes) {
    Json one = {{"source", bytes_to_json(m.source)}, {"guest_path", bytes_to_json(m.guest_path)}, {"read_only", m.read_only}};
    if (m.size_bytes) one["size_bytes"] = m.size_bytes;
    v.push_back(std::move(one));
  }
  return v;
}

Json tmpfs_json(const SandboxInfo& i) {
  Json v = Json::array();
  for (const auto& t : i.tmpfs) v.push_back({{"guest_path", bytes_to_json(t.guest_path)}, {"size_bytes", t.size_bytes}});
  return v;
}

Json labels_json(const SandboxInfo& i) {
  Json v = Json::object();
  for (const auto& [k, val] : i.labels) v[k] = bytes_to_json(val);
  return v;
}

Json vm_json(const VmRecord& v) {
  Json disks = Json::array();
  for (const auto& d : v.disks) disks.push_back({{"path", bytes_to_json(d.path)}, {"read_only", d.read_only}});
  return {{"hostname", v.hostname},
          {"accel", vm::accel_name(v.accel)},
          {"boot_timeout_ms", v.boot_timeout_ms},
          {"stop_timeout_ms", v.stop_timeout_ms},
          {"log_max_bytes", v.log_max_bytes},
          {"disks", std::move(disks)},
          {"root_mode", v.root_mode},
          {"lower_fs", v.lower_fs}};
}

// The stored spec. Not the JSON `moat inspect` prints (cli/sandbox_commands.cpp
// to_json): that one is a lossy display, this one must give back every byte.
std::string spec_json(const SandboxRecord& r) {
  const SandboxInfo& i = r.info;
  Json j = {{"image", bytes_to_json(i.image)},
            {"image_digest", bytes_to_json(i.image_digest)},
            {"labels", labels_json(i)},
            {"cpus", i.cpus},
            {"cpu_weight", i.cpu_weight},
            {"io_weight", i.io_weight},
            {"memory_mib", i.memory_mib},
            {"disk_size_mib", i.disk_size_mib},
            {"idle_timeout_s", whole_seconds(i.idle_timeout)},
            {"max_duration_s", whole_seconds(i.max_duration)},
            {"auto_remove", i.auto_remove},
            {"command", bytes_list_to_json(i.command)},
            {"env", bytes_list_to_json(i.env)},
            {"workdir", bytes_to_json(i.workdir)},
            {"user", bytes_to_json(i.user)},
            {"dir", bytes_to_json(i.dir)},
            {"volumes", volumes_json(i)},
            {"tmpfs", tmpfs_json(i)},
            {"network", shim::network_to_json(i.network)},
            {"snapshot", i.snapshot}};
  if (r.vm.stored) j["vm"] = vm_json(r.vm);
  // Label keys are checked to be UTF-8 before a record is made; should one
  // slip through, a lossy key beats an exception.
  return proto::dump_lossy(j);
}

// A missing field is its default; one of the wrong type damages the spec.
Status read_bytes(const Json& j, const char* key, std::string& out) {
  auto it = j.find(key);
  if (it == j.end()) return ok_status();
  auto v = bytes_from_json(*it);
  if (!v) return make_error(std::string("field \"") + key + "\" is not a string");
  out = std::move(*v);
  return ok_status();
}

Status read_bytes_list(const Json& j, const char* key, std::vector<std::string>& out) {
  auto it = j.find(key);
  if (it == j.end()) return ok_status();
  auto v = bytes_list_from_json(*it);
  if (!v) return make_error(std::string("field \"") + key + "\" is not a list of strings");
  out = std::move(*v);
  return ok_status();
}

Status read_labels(const Json& j, std::map<std::string, std::string>& out) {
  auto it = j.find("labels");
  if (it == j.end()) return ok_status();
  if (!it->is_object()) return make_error("field \"labels\" is not a map");
  for (const auto& [k, v] : it->items()) {
    auto value = bytes_from_json(v);
    if (!value) return make_error("label \"" + k + "\" is not a string");
    out[k] = std::move(*value);
  }
  return ok_status();
}

Status read_mounts(const Json& j, SandboxInfo& i) {
  for (const auto& v : j.value("volumes", Json::array())) {
    VolumeMount m;
    MOAT_TRY(read_bytes(v, "source", m.source));
    MOAT_TRY(read_bytes(v, "guest_path", m.guest_path));
    m.read_only = v.at("read_only").get<bool>();
    m.size_bytes = v.value("size_bytes", std::uint64_t{0});
    i.volumes.push_back(std::move(m));
  }
  for (const auto& t : j.value("tmpfs", Json::array())) {
    TmpfsMount m;
    MOAT_TRY(read_bytes(t, "guest_path", m.guest_path));
    m.size_bytes = t.at("size_bytes").get<std::uint64_t>();
    i.tmpfs.push_back(std::move(m));
  }
  return ok_status();
}

Status read_vm(const Json& j, VmRecord& v) {
  auto it = j.find("vm");
  if (it == j.end()) return ok_status();
  if (!it->is_object()) return make_error("field \"vm\" is not an object");
  const Json& o = *it;
  v.stored = true;
  v.hostname = o.at("hostname").get<std::string>();
  v.accel = vm::accel_from_name(o.at("accel").get<std::string>());
  v.boot_timeout_ms = o.at("boot_timeout_ms").get<int>();
  v.stop_timeout_ms = o.at("stop_timeout_ms").get<int>();
  v.log_max_bytes = o.at("log_max_bytes").get<std::uint64_t>();
  for (const auto& d : o.at("disks")) {
    vm::DiskSpec disk;
    MOAT_TRY(read_bytes(d, "path", disk.path));
    disk.read_only = d.at("read_only").get<bool>();
    v.disks.push_back(std::move(disk));
  }
  v.root_mode = o.at("root_mode").get<std::string>();
  v.lower_fs = o.at("lower_fs").get<std::string>();
  return ok_status();
}

Status read_spec_fields(const Json& j, SandboxInfo& i) {
  MOAT_TRY(read_bytes(j, "image", i.image));
  MOAT_TRY(read_bytes(j, "image_digest", i.image_digest));
  MOAT_TRY(read_labels(j, i.labels));
  i.cpus = j.value("cpus", 1);
  i.cpu_weight = j.value("cpu_weight", 100u);
  i.io_weight = j.value("io_weight", 0u);
  i.memory_mib = j.value("memory_mib", 0);
  i.disk_size_mib = j.value("disk_size_mib", std::uint64_t{0});
  i.idle_timeout = std::chrono::seconds(j.value("idle_timeout_s", std::int64_t{0}));
  i.max_duration = std::chrono::seconds(j.value("max_duration_s", std::int64_t{0}));
  i.auto_remove = j.value("auto_remove", false);
  MOAT_TRY(read_bytes_list(j, "command", i.command));
  MOAT_TRY(read_bytes_list(j, "env", i.env));
  MOAT_TRY(read_bytes(j, "workdir", i.workdir));
  MOAT_TRY(read_bytes(j, "user", i.user));
  MOAT_TRY(read_bytes(j, "dir", i.dir));
  MOAT_TRY(read_bytes(j, "snapshot", i.snapshot));
  // A record from before networks were kept has the default options.
  if (auto it = j.find("network"); it != j.end()) {
    MOAT_ASSIGN_OR_RETURN(i.network, shim::network_from_json(*it));
  }
  return read_mounts(j, i);
}

// The spec is our own JSON, but a damaged database must not crash a CLI.
Status read_spec(const std::string& text, SandboxRecord& r) {
  SandboxInfo& i = r.info;
  auto j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("sandbox " + i.id + ": damaged spec in the database");
  try {
    auto st = read_spec_fields(j, i);
    if (st) st = read_vm(j, r.vm);
    if (!st) return make_error("sandbox " + i.id + ": damaged spec in the database: " + st.error().message);
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
  MOAT_TRY(read_spec(s.text(8), r));
  if (r.state != kStateCreating) {
    MOAT_ASSIGN_OR_RETURN(r.info.state, parse_state(r.state));
  }
  return r;
}

}  // namespace

std::uint64_t whole_seconds(Duration limit) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(limit).count());
}

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
  s.bind(8, static_cast<std::int64_t>(r.info.shim_pid)).bind(9, spec_json(r));
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

// Records `kind` for sandbox `id`, in the caller's transaction, and drops
// the oldest past kMaxEvents.
Status SandboxDb::add_event(const std::string& id, SandboxEventKind kind, const std::string& reason) {
  return shim::insert_event(*db_, id, to_string(kind), reason, unix_now());
}

Result<SandboxDb::RowState> SandboxDb::row_state(const std::string& id) {
  store::Stmt s(*db_, "SELECT state, shim_pid FROM sandboxes WHERE id = ?1");
  MOAT_TRY(s.prepared());
  s.bind(1, id);
  MOAT_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return make_error("no such sandbox: " + id, ENOENT);
  return RowState{s.text(0), static_cast<int>(s.integer(1))};
}

Status SandboxDb::set_state(const std::string& id, const std::string& state, const std::string& reason, int shim_pid,
                            const char* time_column, std::int64_t time) {
  store::Transaction tx(*db_);
  MOAT_TRY(tx.begin());
  MOAT_TRY(change_state(id, state, reason, shim_pid, time_column, time));
  return tx.commit();
}

Status SandboxDb::change_state(const std::string& id, const std::string& state, const std::string& reason,
                               int shim_pid, const char* time_column, std::int64_t time) {
  MOAT_ASSIGN_OR_RETURN(auto now, row_state(id));
  // Told once: a start when the shim's pid first becomes known, the others
  // when the state really changes.
  if (auto kind = event_of(state, shim_pid)) {
    bool news = *kind == SandboxEventKind::kStarted ? now.state != state || now.shim_pid == 0 : now.state != state;
    if (news) MOAT_TRY(add_event(id, *kind, reason));
  }
  return update_state(id, state, reason, shim_pid, time_column, time);
}

Status SandboxDb::update_state(const std::string& id, const std::string& state, const std::string& reason,
                               int shim_pid, const char* time_column, std::int64_t time) {
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

Status SandboxDb::update_spec(const SandboxRecord& r) {
  store::Stmt s(*db_, "UPDATE sandboxes SET spec = ?2 WHERE id = ?1");
  MOAT_TRY(s.prepared());
  s.bind(1, r.info.id).bind(2, spec_json(r));
  MOAT_TRY(s.run());
  if (db_->changes() == 0) return make_error("no such sandbox: " + r.info.id, ENOENT);
  return ok_status();
}

Status SandboxDb::mark_created(const std::string& id) {
  return set_state(id, to_string(SandboxState::kCreated), "", 0, nullptr, 0);
}

Status SandboxDb::mark_all_created(const std::vector<std::string>& ids) {
  store::Transaction tx(*db_);
  MOAT_TRY(tx.begin());
  for (const auto& id : ids) MOAT_TRY(change_state(id, to_string(SandboxState::kCreated), "", 0, nullptr, 0));
  return tx.commit();
}

Status SandboxDb::mark_running(const std::string& id, int shim_pid, std::int64_t started_at) {
  return set_state(id, to_string(SandboxState::kRunning), "", shim_pid, "started_at", started_at);
}

Status SandboxDb::mark_finished(const std::string& id, SandboxState state, const std::string& reason,
                                std::int64_t finished_at) {
  return set_state(id, to_string(state), reason, 0, "finished_at", finished_at);
}

Status SandboxDb::remove(const std::string& id) {
  store::Transaction tx(*db_);
  MOAT_TRY(tx.begin());
  auto now = row_state(id);
  if (!now && now.error().code == ENOENT) return ok_status();
  if (!now) return now.error();
  // A create that never finished was never told: its removal is not either.
  if (now->state != kStateCreating) MOAT_TRY(add_event(id, SandboxEventKind::kRemoved, ""));
  store::Stmt s(*db_, "DELETE FROM sandboxes WHERE id = ?1");
  MOAT_TRY(s.prepared());
  s.bind(1, id);
  MOAT_TRY(s.run());
  return tx.commit();
}

Result<std::vector<SandboxEvent>> SandboxDb::events_after(std::uint64_t after, int limit) {
  store::Stmt s(*db_,
                "SELECT seq, time, sandbox_id, name, kind, reason FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
  MOAT_TRY(s.prepared());
  s.bind(1, static_cast<std::int64_t>(after)).bind(2, static_cast<std::int64_t>(limit));
  std::vector<SandboxEvent> out;
  while (true) {
    MOAT_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    SandboxEvent e;
    e.seq = static_cast<std::uint64_t>(s.integer(0));
    e.time = s.integer(1);
    e.id = s.text(2);
    e.name = s.text(3);
    auto kind = parse_event_kind(s.text(4));
    if (!kind) return make_error("damaged event " + std::to_string(e.seq) + " in the database", EIO);
    e.kind = *kind;
    e.reason = s.text(5);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace sandbox
}  // namespace moat
