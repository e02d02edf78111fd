#include "server/e2b/sandbox_records.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <nlohmann/json.hpp>

#include "server/e2b/string_map.h"
#include "util/json_object.h"
#include "util/read_file.h"
#include "util/write_file_atomic.h"

namespace moat::server::e2b {
namespace {

using Json = nlohmann::json;

std::int64_t ns_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Clock::time_point time_of(std::int64_t ns) {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

}  // namespace

bool plain_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

std::string record_json(const E2bSandbox& s) {
  return Json{{"id", s.id},
              {"template_id", s.template_id},
              {"access_token", s.access_token},
              {"user", s.user},
              {"metadata", s.metadata},
              {"env_vars", s.env_vars},
              {"started_at_ns", ns_of(s.started_at)},
              {"end_at_ns", ns_of(s.end_at)},
              {"cpus", s.cpus},
              {"memory_mib", s.memory_mib}}
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<E2bSandbox> record_from_json(std::string_view text) {
  MOAT_ASSIGN_OR_RETURN(Json j, parse_json_object(text, "e2b record", SandboxRecords::kMaxRecordBytes));
  auto str = [&](const char* f) -> Result<std::string> {
    if (!j.contains(f) || !j[f].is_string()) return make_error(std::string(f) + ": expected a string", EINVAL);
    return j[f].get<std::string>();
  };
  auto num = [&](const char* f) -> Result<std::int64_t> {
    if (!j.contains(f) || !j[f].is_number_integer()) return make_error(std::string(f) + ": expected a number", EINVAL);
    return j[f].get<std::int64_t>();
  };
  E2bSandbox s;
  MOAT_ASSIGN_OR_RETURN(s.id, str("id"));
  if (!plain_id(s.id)) return make_error("id: not a sandbox id", EINVAL);
  MOAT_ASSIGN_OR_RETURN(s.template_id, str("template_id"));
  MOAT_ASSIGN_OR_RETURN(s.access_token, str("access_token"));
  if (s.access_token.size() < 32) return make_error("access_token: too short", EINVAL);
  MOAT_ASSIGN_OR_RETURN(s.user, str("user"));
  MOAT_ASSIGN_OR_RETURN(s.metadata, string_map_of(j.value("metadata", Json()), "metadata"));
  MOAT_ASSIGN_OR_RETURN(s.env_vars, string_map_of(j.value("env_vars", Json()), "env_vars"));
  MOAT_ASSIGN_OR_RETURN(std::int64_t started, num("started_at_ns"));
  MOAT_ASSIGN_OR_RETURN(std::int64_t end, num("end_at_ns"));
  s.started_at = time_of(started);
  s.end_at = time_of(end);
  MOAT_ASSIGN_OR_RETURN(std::int64_t cpus, num("cpus"));
  MOAT_ASSIGN_OR_RETURN(std::int64_t memory, num("memory_mib"));
  if (cpus < 1 || cpus > 64 || memory < 1 || memory > (1 << 20)) return make_error("cpus or memory_mib out of range", EINVAL);
  s.cpus = static_cast<int>(cpus);
  s.memory_mib = static_cast<int>(memory);
  return s;
}

Result<SandboxRecords> SandboxRecords::open(const std::string& dir) {
  std::size_t slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0) ::mkdir(dir.substr(0, slash).c_str(), 0700);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return errno_error("mkdir " + dir);
  return SandboxRecords(dir);
}

Status SandboxRecords::save(const E2bSandbox& s) const {
  if (!plain_id(s.id)) return make_error("not a sandbox id: " + s.id, EINVAL);
  return write_file_atomic(path_of(s.id), record_json(s), 0600);
}

void SandboxRecords::remove(const std::string& id) const {
  if (plain_id(id)) ::unlink(path_of(id).c_str());
}

std::vector<E2bSandbox> SandboxRecords::load(std::vector<std::string>& problems) const {
  std::vector<E2bSandbox> out;
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() <= 5 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
    std::string id = name.substr(0, name.size() - 5);
    if (!plain_id(id)) continue;
    auto text = read_file_bounded(path_of(id), kMaxRecordBytes);
    auto record = text ? record_from_json(*text) : Result<E2bSandbox>(text.error());
    if (!record || record->id != id) {
      problems.push_back(path_of(id) + ": " + (record ? "names another sandbox" : record.error().message));
      continue;
    }
    out.push_back(std::move(*record));
  }
  ::closedir(d);
  return out;
}

}  // namespace moat::server::e2b
