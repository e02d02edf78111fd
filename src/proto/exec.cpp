#include "proto/exec.h"

#include <algorithm>
#include <cerrno>

#include "proto/text.h"

namespace moat::proto {
namespace {

Result<std::vector<std::string>> get_string_list(const Json& p, const char* key,
                                                 std::size_t max_items, std::size_t max_len) {
  std::vector<std::string> out;
  auto it = p.find(key);
  if (it == p.end()) return out;
  if (!it->is_array()) return make_error(std::string("field \"") + key + "\" must be an array");
  if (it->size() > max_items) return make_error(std::string("field \"") + key + "\" has too many items");
  for (const auto& item : *it) {
    auto bytes = string_bytes(item);
    if (!bytes) return make_error(std::string("field \"") + key + "\" must hold strings");
    const std::string& s = *bytes;
    if (s.size() > max_len) return make_error(std::string("an item of \"") + key + "\" is too long");
    if (s.find('\0') != std::string::npos)
      return make_error(std::string("an item of \"") + key + "\" contains a NUL byte");
    out.push_back(std::move(*bytes));
  }
  return out;
}

Json bytes_list(const std::vector<std::string>& list) {
  Json a = Json::array();
  for (const auto& s : list) a.push_back(bytes_value(s));
  return a;
}

// "128 KiB", "1 MiB": the limits as people read them.
std::string size_text(std::size_t bytes) {
  if (bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes >> 10) + " KiB";
}

Status check_list(const std::vector<std::string>& items, const char* what, std::size_t max_items) {
  if (items.size() > max_items)
    return make_error(std::to_string(items.size()) + " " + what + " given; at most " + std::to_string(max_items),
                      E2BIG);
  for (const auto& s : items) {
    // Shown up to '=' at most: an environment value may be a secret.
    std::string shown = s.substr(0, std::min<std::size_t>(s.find('='), 32));
    if (s.size() > kMaxArgLength)
      return make_error(std::string("one of the ") + what + " (\"" + shown + "...\") is " +
                            std::to_string(s.size()) + " bytes; each may be at most " + size_text(kMaxArgLength),
                        E2BIG);
  }
  return ok_status();
}

}  // namespace

Status check_exec_request(const ExecRequest& r) {
  MOAT_TRY(check_list(r.argv, "command arguments", kMaxArgs));
  MOAT_TRY(check_list(r.env, "environment variables", kMaxEnv));
  // The stream number does not change the size much: take the largest.
  std::size_t body = encode_message(make_message(0xffffffffu, msg::kExec, to_payload(r))).size() - kHeaderSize;
  if (body > kMaxBodySize)
    return make_error("the command and its environment take " + std::to_string(body) +
                          " bytes encoded; one exec request may be at most " + size_text(kMaxBodySize) + " (" +
                          std::to_string(kMaxBodySize) + " bytes)",
                      E2BIG);
  return ok_status();
}

Json to_payload(const ExecRequest& r) {
  Json p = Json::object();
  // Byte strings: POSIX argv, environment, paths and user names are bytes.
  p["argv"] = bytes_list(r.argv);
  p["env"] = bytes_list(r.env);
  p["cwd"] = bytes_value(r.cwd);
  p["user"] = bytes_value(r.user);
  p["tty"] = r.tty;
  p["rows"] = r.rows;
  p["cols"] = r.cols;
  p["stdin"] = r.stdin_open;
  p["timeout_ms"] = r.timeout_ms;
  Json limits = Json::object();
  for (const auto& [name, lim] : r.rlimits) limits[name] = Json::array({lim.soft, lim.hard});
  p["rlimits"] = limits;
  if (r.has_capabilities)
    p["caps"] = Json::array({r.cap_bounding, r.cap_effective, r.cap_permitted, r.cap_inheritable, r.cap_ambient});
  if (r.no_new_privileges) p["nnp"] = true;
  return p;
}

Result<ExecRequest> parse_exec_request(const Json& p) {
  ExecRequest r;
  MOAT_ASSIGN_OR_RETURN(r.argv, get_string_list(p, "argv", kMaxArgs, kMaxArgLength));
  if (r.argv.empty()) return make_error("exec: argv is empty");
  if (r.argv[0].empty()) return make_error("exec: argv[0] is empty");
  MOAT_ASSIGN_OR_RETURN(r.env, get_string_list(p, "env", kMaxEnv, kMaxArgLength));
  for (const auto& e : r.env) {
    if (e.find('=') == std::string::npos || e[0] == '=')
      return make_error("exec: environment entry \"" + e.substr(0, 64) + "\" is not KEY=VALUE");
  }
  if (has(p, "cwd")) { MOAT_ASSIGN_OR_RETURN(r.cwd, get_string(p, "cwd", kMaxPathLength)); }
  if (r.cwd.find('\0') != std::string::npos) return make_error("exec: cwd contains a NUL byte");
  if (has(p, "user")) { MOAT_ASSIGN_OR_RETURN(r.user, get_string(p, "user", kMaxUserLength)); }
  if (has(p, "tty")) { MOAT_ASSIGN_OR_RETURN(r.tty, get_bool(p, "tty")); }
  if (has(p, "rows")) {
    MOAT_ASSIGN_OR_RETURN(auto rows, get_uint(p, "rows", 0xffff));
    r.rows = static_cast<std::uint16_t>(rows);
  }
  if (has(p, "cols")) {
    MOAT_ASSIGN_OR_RETURN(auto cols, get_uint(p, "cols", 0xffff));
    r.cols = static_cast<std::uint16_t>(cols);
  }
  if (has(p, "stdin")) { MOAT_ASSIGN_OR_RETURN(r.stdin_open, get_bool(p, "stdin")); }
  if (has(p, "timeout_ms")) {
    MOAT_ASSIGN_OR_RETURN(r.timeout_ms, get_uint(p, "timeout_ms", 1000ull * 86400 * 365));
  }
  if (has(p, "rlimits")) {
    const Json& limits = p["rlimits"];
    if (!limits.is_object()) return make_error("exec: rlimits must be a map");
    if (limits.size() > 32) return make_error("exec: too many rlimits");
    for (const auto& [name, value] : limits.items()) {
      if (!value.is_array() || value.size() != 2 || !value[0].is_number_unsigned() ||
          !value[1].is_number_unsigned())
        return make_error("exec: rlimit \"" + name.substr(0, 32) + "\" must be [soft, hard]");
      Rlimit lim{value[0].get<std::uint64_t>(), value[1].get<std::uint64_t>()};
      if (lim.soft > lim.hard)
        return make_error("exec: rlimit \"" + name.substr(0, 32) + "\" has soft > hard");
      r.rlimits[name] = lim;
    }
  }
  if (has(p, "caps")) {
    const Json& caps = p["caps"];
    if (!caps.is_array() || caps.size() != 5) return make_error("exec: caps must be five bit masks");
    for (const auto& c : caps)
      if (!c.is_number_unsigned()) return make_error("exec: caps must be five bit masks");
    r.has_capabilities = true;
    r.cap_bounding = caps[0].get<std::uint64_t>();
    r.cap_effective = caps[1].get<std::uint64_t>();
    r.cap_permitted = caps[2].get<std::uint64_t>();
    r.cap_inheritable = caps[3].get<std::uint64_t>();
    r.cap_ambient = caps[4].get<std::uint64_t>();
  }
  if (has(p, "nnp")) { MOAT_ASSIGN_OR_RETURN(r.no_new_privileges, get_bool(p, "nnp")); }
  return r;
}

Json to_payload(const ExitStatus& s) {
  Json p = Json::object();
  p["code"] = s.code;
  p["signal"] = s.signal;
  p["timed_out"] = s.timed_out;
  return p;
}

Result<ExitStatus> parse_exit_status(const Json& p) {
  ExitStatus s;
  MOAT_ASSIGN_OR_RETURN(auto code, get_int(p, "code", 0, 255));
  MOAT_ASSIGN_OR_RETURN(auto sig, get_int(p, "signal", 0, 64));
  s.code = static_cast<int>(code);
  s.signal = static_cast<int>(sig);
  if (has(p, "timed_out")) { MOAT_ASSIGN_OR_RETURN(s.timed_out, get_bool(p, "timed_out")); }
  return s;
}

}  // namespace moat::proto
