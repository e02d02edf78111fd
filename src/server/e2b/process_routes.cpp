// envd's process.Process service over Connect (process.proto in
// e2b-dev/E2B spec/envd): Start and Connect stream a command's events,
// List, SendInput, SendSignal, CloseStdin and Update act on one by pid or
// tag. Commands run through moat's Exec; the process table keeps them past
// the stream that started them.
#include <algorithm>
#include <csignal>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "server/e2b/connect_call.h"
#include "server/route_support.h"
#include "server/server_state.h"
#include "util/base64.h"

namespace moat::server::e2b {
namespace {

using Json = nlohmann::json;

constexpr std::chrono::seconds kStartTimeout{60};

// ProcessSelector {"pid": N} or {"tag": "..."}.
Result<std::shared_ptr<ProcessEntry>> selected(E2bService& svc, const ConnectCall& call) {
  const Json& sel = call.message.value("process", Json::object());
  std::shared_ptr<ProcessEntry> e;
  if (sel.contains("pid") && sel["pid"].is_number_unsigned()) {
    e = svc.processes->by_pid(call.envd.sandbox.id, sel["pid"].get<int>());
    if (!e) return make_error("process with pid " + std::to_string(sel["pid"].get<long long>()) + " not found", ENOENT);
  } else if (sel.contains("tag") && sel["tag"].is_string()) {
    e = svc.processes->by_tag(call.envd.sandbox.id, sel["tag"].get<std::string>());
    if (!e) return make_error("process with tag '" + sel["tag"].get<std::string>() + "' not found", ENOENT);
  } else {
    return make_error("process: expected a selector {\"pid\": N} or {\"tag\": \"...\"}", EINVAL);
  }
  return e;
}

Result<std::string> bytes_field(const Json& j, const char* name) {
  const Json& v = j[name];
  if (!v.is_string()) return make_error(std::string(name) + ": expected base64 bytes", EINVAL);
  return base64_decode(v.get<std::string>());
}

std::chrono::milliseconds keepalive_of(const Request& req) {
  long s = std::strtol(req.header("keepalive-ping-interval").c_str(), nullptr, 10);
  if (s < 1 || s > 300) s = 50;
  return std::chrono::seconds(s);
}

// Writes what `queue` gets to the client, in the call's codec, until the
// command's end or the client's leaving; a keepalive event whenever nothing
// came for a while.
void pump(const std::shared_ptr<ProcessEntry>& entry, const std::shared_ptr<EventQueue>& queue,
          const std::optional<BinaryCodec>& codec, std::chrono::milliseconds keepalive, int fd,
          const std::string& first_event) {
  std::optional<ConnectError> broken;
  auto send = [&](std::string_view json) {
    auto bytes = stream_envelope(codec, json);
    if (!bytes) {
      broken = ConnectError{ConnectCode::kInternal, bytes.error().message};
      return false;
    }
    return write_all_fd(fd, *bytes);
  };
  bool ok = first_event.empty() || send(first_event);
  while (ok) {
    auto item = queue->pop(keepalive);
    if (!item) {
      ok = !reader_gone(fd) && send(keepalive_event_json());
      continue;
    }
    if (!item->json.empty()) ok = send(item->json);
    if (item->last) {
      if (ok) (void)write_all_fd(fd, end_stream(item->error));
      break;
    }
  }
  if (broken) (void)write_all_fd(fd, end_stream(broken));
  entry->unfollow(queue);
}

Response streaming(const ConnectCall& call, const std::shared_ptr<ProcessEntry>& entry,
                   const std::shared_ptr<EventQueue>& queue, std::chrono::milliseconds keepalive,
                   std::string first_event) {
  Response r;
  r.content_type = stream_content_type(call.codec);
  r.stream = [entry, queue, codec = call.codec, keepalive, first_event](int fd) {
    pump(entry, queue, codec, keepalive, fd, first_event);
  };
  return r;
}

// The thread that waits on a command and ends its streams.
void start_reader(std::shared_ptr<ProcessEntry> entry, std::shared_ptr<ProcessTable> table) {
  std::thread([entry = std::move(entry), table = std::move(table)] {
    auto status = entry->exec->wait();
    // The end goes to the followers before the entry is marked finished, so
    // a start that sees "finished" finds the reason in its queue.
    if (status && *status) {
      entry->publish({end_event_json(**status), true, std::nullopt});
    } else {
      // The code follows the error: a sandbox that stopped is unavailable
      // (the SDK's "not running anymore"), a command that could not run is
      // what its error says.
      ConnectError why = status ? ConnectError{ConnectCode::kUnavailable, "the command's wait ended without a status"}
                                : connect_error_of(status.error());
      entry->publish({"", true, std::move(why)});
    }
    entry->finish(*table);
  }).detach();
}

// A PTY message's size (rows, cols), each clamped to 1..1000.
std::pair<std::uint16_t, std::uint16_t> pty_size(const Json& pty) {
  const Json& size = pty.value("size", Json::object());
  return {static_cast<std::uint16_t>(std::clamp<long long>(size.value("rows", 24LL), 1, 1000)),
          static_cast<std::uint16_t>(std::clamp<long long>(size.value("cols", 80LL), 1, 1000))};
}

Result<ExecOptions> exec_options(const ConnectCall& call, const Json& process) {
  ExecOptions o;
  if (!process.is_object() || !process.contains("cmd") || !process["cmd"].is_string() ||
      process["cmd"].get<std::string>().empty())
    return make_error("process.cmd: expected the program to run", EINVAL);
  o.argv.push_back(process["cmd"].get<std::string>());
  if (process.contains("args")) {
    if (!process["args"].is_array()) return make_error("process.args: expected strings", EINVAL);
    for (const Json& a : process["args"]) {
      if (!a.is_string()) return make_error("process.args: expected strings", EINVAL);
      o.argv.push_back(a.get<std::string>());
    }
  }
  // The sandbox's variables (create's envVars), then the command's own.
  std::map<std::string, std::string> env = call.envd.sandbox.env_vars;
  if (process.contains("envs")) {
    if (!process["envs"].is_object()) return make_error("process.envs: expected a map of strings", EINVAL);
    for (auto it = process["envs"].begin(); it != process["envs"].end(); ++it) {
      if (!it.value().is_string()) return make_error("process.envs." + it.key() + ": expected a string", EINVAL);
      env[it.key()] = it.value().get<std::string>();
    }
  }
  env.emplace("HOME", call.envd.user.home);
  env.emplace("USER", call.envd.user.name);
  for (const auto& [k, v] : env) o.env.push_back(k + "=" + v);
  o.user = call.envd.user.name;
  o.cwd = call.envd.user.home;
  if (process.contains("cwd") && process["cwd"].is_string() && !process["cwd"].get<std::string>().empty())
    o.cwd = resolve_guest_path(process["cwd"].get<std::string>(), call.envd.user.home);
  const Json& pty = call.message.value("pty", Json());
  if (pty.is_object()) {
    o.tty = true;
    std::tie(o.rows, o.cols) = pty_size(pty);
    o.stdin_open = true;
  } else {
    o.stdin_open = call.message.value("stdin", false);
  }
  MOAT_TRY(check_exec_options(o));
  return o;
}

Response start(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kStreaming, refusal);
  if (!call) return streaming_error(refusal);
  const Json& process = call->message.value("process", Json());
  auto options = exec_options(*call, process);
  if (!options) return streaming_error(connect_error_of(options.error()));

  auto entry = std::make_shared<ProcessEntry>();
  entry->sandbox_id = call->envd.sandbox.id;
  entry->config = process;
  entry->pty = options->tty;
  if (call->message.contains("tag") && call->message["tag"].is_string())
    entry->tag = call->message["tag"].get<std::string>();
  // The starting stream follows before the command runs: nothing it prints is missed.
  auto queue = entry->follow();
  ProcessEntry* raw = entry.get();  // the Exec (and so its callbacks) lives inside the entry
  ExecCallbacks cb;
  cb.on_stdout = [raw](std::string_view s) {
    raw->publish({data_event_json(raw->pty ? "pty" : "stdout", s), false, std::nullopt});
  };
  cb.on_stderr = [raw](std::string_view s) { raw->publish({data_event_json("stderr", s), false, std::nullopt}); };
  cb.on_started = [raw](int pid) { raw->note_started(pid); };
  auto ex = svc.handles.with<Exec>(entry->sandbox_id, [&](Sandbox& sb) { return sb.start_exec(*options, cb); });
  if (!ex) return streaming_error(connect_error_of(ex.error()));
  entry->exec.emplace(std::move(*ex));
  start_reader(entry, svc.processes);
  // The start event carries the guest's pid, which the guest says once the
  // command runs; a command that could not start ends its stream instead.
  auto pid = entry->wait_started(kStartTimeout);
  if (!pid) {
    entry->exec->cancel();
    entry->unfollow(queue);
    return streaming_error({ConnectCode::kDeadlineExceeded,
                            "the command did not start within " + std::to_string(kStartTimeout.count()) + " s"});
  }
  if (*pid == 0) {
    // Ended before it started (a working directory or program that is not
    // there): the stream is the reason, not events without a start.
    std::optional<ConnectError> why;
    while (auto item = queue->pop(std::chrono::milliseconds(0)))
      if (item->last) {
        why = item->error;
        break;
      }
    entry->unfollow(queue);
    return streaming_error(why.value_or(ConnectError{ConnectCode::kFailedPrecondition, "the command ended before it started"}));
  }
  if (!entry->enter(*svc.processes)) {
    (void)entry->exec->kill();
    entry->unfollow(queue);
    return streaming_error({ConnectCode::kResourceExhausted, "too many commands in this sandbox"});
  }
  return streaming(*call, entry, queue, keepalive_of(req), start_event_json(*pid));
}

Response connect(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kStreaming, refusal);
  if (!call) return streaming_error(refusal);
  auto entry = selected(svc, *call);
  if (!entry) return streaming_error(connect_error_of(entry.error()));
  auto queue = (*entry)->follow();
  if (!queue) return streaming_error({ConnectCode::kNotFound, "the process ended"});
  return streaming(*call, *entry, queue, keepalive_of(req), start_event_json((*entry)->pid));
}

Response list(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kUnary, refusal);
  if (!call) return unary_error(refusal);
  Json out = Json::array();
  for (const auto& e : svc.processes->list(call->envd.sandbox.id)) {
    Json p = {{"config", e->config}, {"pid", e->pid}};
    if (e->tag) p["tag"] = *e->tag;
    out.push_back(std::move(p));
  }
  return unary_answer(*call, Json{{"processes", out}}.dump());
}

// The unary calls on one command: run `act` on it, answer {}.
template <class F>
Response on_process(E2bService& svc, Request& req, F&& act) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kUnary, refusal);
  if (!call) return unary_error(refusal);
  auto entry = selected(svc, *call);
  if (!entry) return unary_error(connect_error_of(entry.error()));
  Status s = act(**entry, call->message);
  if (!s) return unary_error(connect_error_of(s.error()));
  return unary_answer(*call, "{}");
}

Status send_input(ProcessEntry& e, const Json& m) {
  const Json& input = m.value("input", Json::object());
  const char* field = input.contains("pty") ? "pty" : "stdin";
  if (!input.contains(field)) return make_error("input: expected stdin or pty bytes", EINVAL);
  MOAT_ASSIGN_OR_RETURN(std::string bytes, bytes_field(input, field));
  return e.exec->write_stdin(bytes);
}

Status send_signal(ProcessEntry& e, const Json& m) {
  const Json& sig = m.value("signal", Json());
  int n = 0;
  if (sig.is_string()) {
    std::string s = sig.get<std::string>();
    if (s == "SIGNAL_SIGKILL") n = SIGKILL;
    else if (s == "SIGNAL_SIGTERM") n = SIGTERM;
  } else if (sig.is_number_integer()) {
    n = sig.get<int>();
  }
  if (n != SIGKILL && n != SIGTERM) return make_error("signal: expected SIGNAL_SIGKILL or SIGNAL_SIGTERM", EINVAL);
  return e.exec->signal(n);
}

Status close_stdin(ProcessEntry& e, const Json&) { return e.exec->close_stdin(); }

Status update(ProcessEntry& e, const Json& m) {
  const Json& pty = m.value("pty", Json());
  if (!pty.is_object()) return ok_status();
  if (!e.pty) return make_error("the process has no terminal to resize", EINVAL);
  auto [rows, cols] = pty_size(pty);
  return e.exec->resize(rows, cols);
}

}  // namespace

void add_e2b_process_routes(ServerState& st, E2bService& svc) {
  Router& r = st.router;
  auto add = [&r](const std::string& method, Handler h) {
    Route route{"POST", "/process.Process/" + method, Route::Body::kWhole, false, connect_route(std::move(h))};
    route.own_auth = true;
    r.add(std::move(route));
  };
  add("Start", [&svc](Request& req) { return start(svc, req); });
  add("Connect", [&svc](Request& req) { return connect(svc, req); });
  add("List", [&svc](Request& req) { return list(svc, req); });
  add("SendInput", [&svc](Request& req) { return on_process(svc, req, send_input); });
  add("SendSignal", [&svc](Request& req) { return on_process(svc, req, send_signal); });
  add("CloseStdin", [&svc](Request& req) { return on_process(svc, req, close_stdin); });
  add("Update", [&svc](Request& req) { return on_process(svc, req, update); });
  add("StreamInput", [](Request&) {
    return unary_error({ConnectCode::kUnimplemented,
                        "StreamInput is a client stream, which Connect carries over HTTP/2 only; use SendInput"});
  });
}

}  // namespace moat::server::e2b
