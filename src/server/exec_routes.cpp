// Commands: POST /v1/sandboxes/{id}/exec starts one. With "wait": true it
// is the non-streaming form: the answer is the command's output and exit.
// Otherwise the answer is the command's id, and
// GET .../execs/{exec}/attach is a WebSocket carrying its streams as typed
// messages (docs/server.md "Exec attach").
#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "moat/json.h"
#include "moat/text.h"
#include "server/api_error.h"
#include "server/route_support.h"
#include "server/server_state.h"
#include "util/base64.h"
#include "util/json_object.h"

namespace moat::server {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// The non-streaming form keeps at most this much of each stream; the rest
// is read and dropped ("stdout_truncated").
constexpr std::size_t kDefaultOutputLimit = 16 << 20;
constexpr std::size_t kMaxOutputLimit = 256 << 20;

// What the server itself takes beside ExecOptions' form.
struct ExecRequest {
  ExecOptions options;
  bool wait = false;
  std::string stdin_bytes;
  bool has_stdin = false;
  bool base64_output = false;
  std::size_t output_limit = kDefaultOutputLimit;
  bool kill_on_disconnect = true;
};

Result<ExecRequest> exec_request_of(const std::string& body) {
  // Bounded depth: what is left is written back out with dump() below.
  MOAT_ASSIGN_OR_RETURN(Json j, parse_json_object(body, "exec", body.size()));
  ExecRequest r;
  auto take_bool = [&](const char* key, bool& out) -> Status {
    if (!j.contains(key)) return ok_status();
    if (!j[key].is_boolean()) return make_error(std::string("exec.") + key + ": expected true or false", EINVAL);
    out = j[key].get<bool>();
    j.erase(key);
    return ok_status();
  };
  MOAT_TRY(take_bool("wait", r.wait));
  for (const char* key : {"stdin", "stdin_base64"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_string()) return make_error(std::string("exec.") + key + ": expected a string", EINVAL);
    if (r.has_stdin) return make_error("exec: give \"stdin\" or \"stdin_base64\", not both", EINVAL);
    r.has_stdin = true;
    if (std::string(key) == "stdin") {
      r.stdin_bytes = j[key].get<std::string>();
    } else {
      auto bytes = base64_decode(j[key].get<std::string>());
      if (!bytes) return bytes.error().wrap("exec.stdin_base64");
      r.stdin_bytes = std::move(*bytes);
    }
    j.erase(key);
  }
  if (j.contains("output")) {
    if (j["output"] != "text" && j["output"] != "base64")
      return make_error("exec.output: expected \"text\" or \"base64\"", EINVAL);
    r.base64_output = j["output"] == "base64";
    j.erase("output");
  }
  if (j.contains("output_limit_bytes")) {
    const Json& v = j["output_limit_bytes"];
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() > kMaxOutputLimit)
      return make_error("exec.output_limit_bytes: expected 0 to " + std::to_string(kMaxOutputLimit), EINVAL);
    r.output_limit = v.get<std::size_t>();
    j.erase("output_limit_bytes");
  }
  if (j.contains("on_disconnect")) {
    if (j["on_disconnect"] != "kill" && j["on_disconnect"] != "continue")
      return make_error("exec.on_disconnect: expected \"kill\" or \"continue\"", EINVAL);
    r.kill_on_disconnect = j["on_disconnect"] == "kill";
    j.erase("on_disconnect");
  }
  bool stdin_given = j.contains("stdin_open");
  MOAT_ASSIGN_OR_RETURN(r.options, exec_options_from_json_text(j.dump()));
  // An attached client streams stdin unless it said otherwise.
  if (r.has_stdin || (!r.wait && !stdin_given)) r.options.stdin_open = true;
  if (r.has_stdin && !r.wait) return make_error("exec: \"stdin\" is for \"wait\": true; attach to stream it", EINVAL);
  return r;
}

struct Captured {
  std::string data;
  bool truncated = false;
  std::size_t limit = 0;
  void add(std::string_view s) {
    std::size_t room = limit > data.size() ? limit - data.size() : 0;
    if (s.size() > room) truncated = true;
    data.append(s.substr(0, std::min(room, s.size())));
  }
};

std::string status_json(const ExitStatus& st) {
  return Json{{"exit_code", st.shell_code()}, {"signal", st.signal}, {"timed_out", st.timed_out}}.dump();
}

// Runs the command to its end, its output kept. A client that leaves ends
// the wait: the command is killed or left to finish, as it asked.
Response run_to_end(ServerState& state, const SandboxInfo& info, ExecRequest& r, Request& req) {
  // Shared with the callbacks: a command left to go on after its client
  // left outlives this call.
  auto out = std::make_shared<Captured>(Captured{{}, false, r.output_limit});
  auto err = std::make_shared<Captured>(Captured{{}, false, r.output_limit});
  ExecCallbacks cb;
  cb.on_stdout = [out](std::string_view s) { out->add(s); };
  cb.on_stderr = [err](std::string_view s) { err->add(s); };
  auto ex = state.handles.with<Exec>(info.id, [&](Sandbox& sb) { return sb.start_exec(r.options, cb); });
  if (!ex) return error_response(ex.error());
  state.counters.execs_started++;
  if (r.has_stdin) {
    Status wrote = ex->write_stdin(r.stdin_bytes);
    if (!wrote && wrote.error().code != EPIPE) return error_response(wrote.error());
    (void)ex->close_stdin();
  }
  for (;;) {
    auto st = ex->wait(250ms);
    if (!st) return error_response(st.error());
    if (*st) {
      Json j = Json::parse(status_json(**st));
      if (r.base64_output) {
        j["stdout_base64"] = base64_encode(out->data);
        j["stderr_base64"] = base64_encode(err->data);
      } else {
        j["stdout"] = lossy_utf8(out->data);
        j["stderr"] = lossy_utf8(err->data);
      }
      j["stdout_truncated"] = out->truncated;
      j["stderr_truncated"] = err->truncated;
      return json_ok(j.dump());
    }
    if (req.client_gone && req.client_gone()) {
      if (r.kill_on_disconnect) {
        (void)ex->kill();
        ex->cancel();
      } else {
        // Goes on to its end, read (and dropped past the output limit) by a
        // thread of its own; no one can attach to it (it has no id).
        try {
          std::thread([exec = std::move(*ex), out, err]() mutable {
            while (true) {
              auto st = exec.wait(std::chrono::seconds(1));
              if (!st || *st) return;
            }
          }).detach();
        } catch (const std::system_error&) {
          // No thread: the handle's end kills the command.
        }
      }
      return error_response(499, "interrupted", "the client closed the connection");
    }
  }
}

Response start(ServerState& state, Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto r = exec_request_of(req.body);
  if (!r) return error_response(r.error());
  if (r->wait) return run_to_end(state, *info, *r, req);
  auto sink = std::make_shared<ExecSink>();
  ExecCallbacks cb;
  cb.on_stdout = [sink](std::string_view s) { sink->deliver('\x01', s); };
  cb.on_stderr = [sink](std::string_view s) { sink->deliver('\x02', s); };
  cb.on_started = [sink](int pid) { sink->pid = pid; };
  auto ex = state.handles.with<Exec>(info->id, [&](Sandbox& sb) { return sb.start_exec(r->options, cb); });
  if (!ex) return error_response(ex.error());
  state.counters.execs_started++;
  int pid = ex->pid();
  auto entry = state.execs.add(info->id, std::move(*ex), sink, r->kill_on_disconnect);
  if (!entry) return error_response(entry.error());
  return json_response(201, Json{{"id", (*entry)->id}, {"sandbox", info->id}, {"pid", pid}}.dump());
}

// One attached client: the command's output as messages on this thread's
// helper, the client's messages as input on this thread.
class Attachment {
 public:
  Attachment(ServerState& state, std::shared_ptr<ExecEntry> entry, MessageChannel& channel)
      : state_(state), entry_(std::move(entry)), ch_(channel) {}

  void run() {
    state_.counters.attaches++;
    int pid = entry_->exec.pid() ? entry_->exec.pid() : entry_->sink->pid.load();
    ch_.send({false, Json{{"type", "attached"}, {"id", entry_->id}, {"pid", pid}}.dump()});
    entry_->sink->set(&ch_);
    std::thread output([this] { pump_output(); });
    while (auto m = ch_.receive()) handle_input(*m);
    if (!ended_) {
      if (entry_->kill_on_disconnect) {
        (void)entry_->exec.kill();
        entry_->exec.cancel();
      }
      stop_output_ = true;
    }
    output.join();
    entry_->sink->set(nullptr);
    if (ended_ || entry_->kill_on_disconnect)
      state_.execs.remove(entry_->id);
    else
      state_.execs.detach(entry_);
    state_.counters.attaches--;
  }

 private:
  // Reads the command (its callbacks send to the channel) until it ends.
  void pump_output() {
    for (;;) {
      auto st = entry_->exec.wait(250ms);
      if (!st) {
        send_error(st.error());
        ended_ = true;
        ch_.close("error");
        return;
      }
      if (*st) {
        Json j = Json::parse(status_json(**st));
        j["type"] = "exit";
        ch_.send({false, j.dump()});
        ended_ = true;
        ch_.close("exit");
        return;
      }
      if (stop_output_) return;
    }
  }

  void handle_input(const WsMessage& m) {
    if (m.binary) {
      Status s = entry_->exec.write_stdin(m.data);
      if (!s && s.error().code != EPIPE) send_error(s.error());
      return;
    }
    auto parsed = parse_json_object(m.data, "frame", m.data.size());
    Json j = parsed ? std::move(*parsed) : Json();
    std::string type = j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
    Status s = ok_status();
    if (type == "stdin") {
      if (!j.contains("data") || !j["data"].is_string()) return send_invalid("stdin: \"data\" must be a string");
      s = entry_->exec.write_stdin(j["data"].get<std::string>());
      if (!s && s.error().code == EPIPE) s = ok_status();
    } else if (type == "stdin_close") {
      s = entry_->exec.close_stdin();
    } else if (type == "resize") {
      auto dim = [&](const char* k) {
        return j.contains(k) && j[k].is_number_unsigned() && j[k].get<std::uint64_t>() >= 1 &&
               j[k].get<std::uint64_t>() <= 65535;
      };
      if (!dim("rows") || !dim("cols")) return send_invalid("resize: \"rows\" and \"cols\" from 1 to 65535");
      s = entry_->exec.resize(j["rows"].get<std::uint16_t>(), j["cols"].get<std::uint16_t>());
    } else if (type == "signal") {
      if (!j.contains("signal") || !j["signal"].is_number_unsigned() || j["signal"].get<std::uint64_t>() < 1 ||
          j["signal"].get<std::uint64_t>() > 64)
        return send_invalid("signal: \"signal\" is a number from 1 to 64");
      s = entry_->exec.signal(j["signal"].get<int>());
    } else if (type == "kill") {
      s = entry_->exec.kill();
    } else {
      return send_invalid("expected a message of type stdin, stdin_close, resize, signal or kill");
    }
    if (!s) send_error(s.error());
  }

  void send_error(const Error& e) {
    ch_.send({false, Json{{"type", "error"}, {"kind", to_string(e.kind())}, {"message", lossy_utf8(e.message)}}.dump()});
  }
  void send_invalid(const std::string& why) { send_error(make_error(why, EINVAL)); }

  ServerState& state_;
  std::shared_ptr<ExecEntry> entry_;
  MessageChannel& ch_;
  std::atomic<bool> ended_{false};
  std::atomic<bool> stop_output_{false};
};

Response attach(ServerState& state, Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto entry = state.execs.attach(info->id, req.params["exec"]);
  if (!entry) return error_response(entry.error());
  Response r;
  r.status = 101;
  auto e = *entry;
  r.websocket = [&state, e](MessageChannel& ch) { Attachment(state, e, ch).run(); };
  return r;
}

Response describe(ServerState& state, Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto e = state.execs.find(info->id, req.params["exec"]);
  if (!e) return error_response(404, "not_found", "no command " + req.params["exec"] + " in " + info->name);
  std::lock_guard lock(e->mu);
  return json_ok(Json{{"id", e->id},
                      {"sandbox", e->sandbox_id},
                      {"pid", e->exec.pid()},
                      {"attached", e->attached},
                      {"on_disconnect", e->kill_on_disconnect ? "kill" : "continue"}}
                     .dump());
}

Response kill(ServerState& state, Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto e = state.execs.find(info->id, req.params["exec"]);
  if (!e) return error_response(404, "not_found", "no command " + req.params["exec"] + " in " + info->name);
  (void)e->exec.kill();
  e->exec.cancel();
  state.execs.remove(e->id);
  return no_content();
}

}  // namespace

void add_exec_routes(ServerState& s) {
  Router& r = s.router;
  r.add({"POST", "/v1/sandboxes/{id}/exec", Route::Body::kWhole, false, [&s](Request& req) { return start(s, req); }});
  r.add({"GET", "/v1/sandboxes/{id}/execs/{exec}", Route::Body::kNone, false,
         [&s](Request& req) { return describe(s, req); }});
  r.add({"DELETE", "/v1/sandboxes/{id}/execs/{exec}", Route::Body::kNone, false,
         [&s](Request& req) { return kill(s, req); }});
  r.add({"GET", "/v1/sandboxes/{id}/execs/{exec}/attach", Route::Body::kNone, true,
         [&s](Request& req) { return attach(s, req); }});
}

}  // namespace moat::server
