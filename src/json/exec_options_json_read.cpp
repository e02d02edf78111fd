// ExecOptions from JSON (docs/json.md "Exec options"): what the server's
// POST /v1/sandboxes/{id}/exec takes, checked as check_exec_options does.
#include "json/json_fields.h"
#include "moat/json.h"

namespace moat {
namespace {

using json_fields::bad;
using json_fields::Json;
using json_fields::Object;

// argv and env are bounded by the protocol (1 MiB per request).
constexpr std::size_t kMaxExecJson = 2 << 20;

Result<std::map<std::string, Rlimit>> rlimits_of(const Object& o) {
  const Json& v = o.raw("rlimits");
  if (!v.is_object()) return bad(o.at("rlimits"), "expected an object of {\"soft\", \"hard\"}");
  std::map<std::string, Rlimit> out;
  for (const auto& [name, limit] : v.items()) {
    Object l(limit, o.at("rlimits") + "." + name);
    MOAT_TRY(l.only({"soft", "hard"}));
    if (!l.has("soft") || !l.has("hard")) return bad(l.at(""), "\"soft\" and \"hard\" are required");
    Rlimit r;
    MOAT_ASSIGN_OR_RETURN(r.soft, l.whole("soft", 0, UINT64_MAX));
    MOAT_ASSIGN_OR_RETURN(r.hard, l.whole("hard", 0, UINT64_MAX));
    out[name] = r;
  }
  return out;
}

}  // namespace

Result<ExecOptions> exec_options_from_json_text(std::string_view text) {
  MOAT_ASSIGN_OR_RETURN(Json j, json_fields::parse_object(text, "exec", kMaxExecJson));
  Object o(j, "exec");
  MOAT_TRY(o.only({"argv", "env", "cwd", "user", "tty", "rows", "cols", "stdin_open", "timeout_s", "rlimits"}));
  if (!o.has("argv")) return bad("exec.argv", "required");
  ExecOptions e;
  MOAT_ASSIGN_OR_RETURN(e.argv, o.strings("argv"));
  if (e.argv.empty()) return bad("exec.argv", "expected at least the program");
  if (o.has("env")) {
    MOAT_ASSIGN_OR_RETURN(e.env, o.strings("env"));
  }
  if (o.has("cwd")) {
    MOAT_ASSIGN_OR_RETURN(e.cwd, o.string("cwd"));
  }
  if (o.has("user")) {
    MOAT_ASSIGN_OR_RETURN(e.user, o.string("user"));
  }
  if (o.has("tty")) {
    MOAT_ASSIGN_OR_RETURN(e.tty, o.boolean("tty"));
  }
  if (o.has("rows")) {
    MOAT_ASSIGN_OR_RETURN(auto rows, o.whole("rows", 1, 65535));
    e.rows = static_cast<std::uint16_t>(rows);
  }
  if (o.has("cols")) {
    MOAT_ASSIGN_OR_RETURN(auto cols, o.whole("cols", 1, 65535));
    e.cols = static_cast<std::uint16_t>(cols);
  }
  if (o.has("stdin_open")) {
    MOAT_ASSIGN_OR_RETURN(e.stdin_open, o.boolean("stdin_open"));
  }
  if (o.has("timeout_s")) {
    MOAT_ASSIGN_OR_RETURN(e.timeout, o.seconds("timeout_s", 365 * 24 * 3600));
  }
  if (o.has("rlimits")) {
    MOAT_ASSIGN_OR_RETURN(e.rlimits, rlimits_of(o));
  }
  auto checked = check_exec_options(e);
  if (!checked) return json_fields::refused(checked.error(), "exec");
  return e;
}

}  // namespace moat
