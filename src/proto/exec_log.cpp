#include "proto/exec_log.h"

#include "proto/exec.h"
#include "proto/text.h"

namespace moat::proto {
namespace {

Json line_head(std::uint64_t time_s, std::uint32_t stream, std::string_view event) {
  return Json{{"time", time_s}, {"stream", stream}, {"event", std::string(event)}};
}

// The argv of a request as far as it is a list of strings, bounded.
void add_argv(Json& line, const Json& payload) {
  auto it = payload.is_object() ? payload.find("argv") : payload.end();
  if (it == payload.end() || !it->is_array()) return;
  Json argv = Json::array();
  std::size_t total = 0;
  for (const auto& item : *it) {
    auto arg = string_bytes(item);
    if (!arg) break;
    total += arg->size();
    if (total > kMaxLoggedArgvBytes) {
      line["argv_truncated"] = true;
      break;
    }
    argv.push_back(bytes_to_json(*arg));
  }
  line["argv"] = std::move(argv);
}

std::int64_t int_or(const Json& j, const char* key, std::int64_t min, std::int64_t max) {
  auto v = get_int(j, key, min, max);
  return v ? *v : 0;
}

}  // namespace

std::string exec_log_start(std::uint64_t time_s, std::uint32_t stream, const Json& exec_payload) {
  Json line = line_head(time_s, stream, msg::kExec);
  add_argv(line, exec_payload);
  return dump_lossy(line);
}

std::optional<std::string> exec_log_end(std::uint64_t time_s, std::uint32_t stream, const Message& m) {
  if (m.type != msg::kExit && m.type != msg::kError) return std::nullopt;
  Json line = line_head(time_s, stream, m.type);
  if (m.type == msg::kExit) {
    if (auto st = parse_exit_status(m.payload)) {
      line["code"] = st->code;
      line["signal"] = st->signal;
      if (st->timed_out) line["timed_out"] = true;
    }
  } else {
    line["message"] = bytes_to_json(parse_error(m.payload, "error", "").message);
  }
  return dump_lossy(line);
}

std::string exec_log_network(std::uint64_t time_s, std::string_view message) {
  Json line = line_head(time_s, 0, "network");
  line["message"] = bytes_to_json(std::string(message));
  return dump_lossy(line);
}

std::optional<ExecLogEntry> parse_exec_log_line(std::string_view text) {
  auto j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  ExecLogEntry e;
  e.time = int_or(j, "time", 0, INT64_MAX);
  e.stream = static_cast<std::uint32_t>(int_or(j, "stream", 0, UINT32_MAX));
  if (auto ev = get_string(j, "event", 32)) e.event = *ev;
  if (auto argv = j.find("argv"); argv != j.end() && argv->is_array()) {
    for (const auto& a : *argv)
      if (auto s = bytes_from_json(a)) e.argv.push_back(std::move(*s));
  }
  if (auto t = get_bool(j, "argv_truncated")) e.argv_truncated = *t;
  e.code = static_cast<int>(int_or(j, "code", 0, 255));
  e.signal = static_cast<int>(int_or(j, "signal", 0, 64));
  if (auto t = get_bool(j, "timed_out")) e.timed_out = *t;
  if (auto m = j.find("message"); m != j.end()) {
    if (auto s = bytes_from_json(*m)) e.message = std::move(*s);
  }
  return e;
}

}  // namespace moat::proto
