// /v1/sandboxes: the manager (moat/sandboxes.h) — create, list, inspect,
// start, stop, restart, delete, network policy, stats, logs.
#include <nlohmann/json.hpp>

#include "moat/json.h"
#include "moat/logs.h"
#include "moat/stats.h"
#include "server/api_error.h"
#include "server/route_support.h"
#include "server/server_state.h"
#include "util/json_object.h"

namespace moat::server {
namespace {

using Json = nlohmann::json;

// ?label=k=v,k2=v2 (every one must match).
Result<std::map<std::string, std::string>> label_filter(const Request& req) {
  std::map<std::string, std::string> labels;
  const std::string* text = req.query_value("label");
  if (!text) return labels;
  std::size_t start = 0;
  while (start <= text->size()) {
    std::size_t end = text->find(',', start);
    if (end == std::string::npos) end = text->size();
    std::string pair = text->substr(start, end - start);
    start = end + 1;
    std::size_t eq = pair.find('=');
    if (pair.empty() || eq == 0) return make_error("query label: expected KEY=VALUE[,KEY=VALUE...]", EINVAL);
    labels[pair.substr(0, eq)] = eq == std::string::npos ? std::string() : pair.substr(eq + 1);
  }
  return labels;
}

Response list(Request& req) {
  auto labels = label_filter(req);
  if (!labels) return error_response(labels.error());
  auto all = list_sandboxes(*labels);
  if (!all) return error_response(all.error());
  return json_ok("{\"sandboxes\":" + to_json_array_text(*all) + "}");
}

// The body is SandboxOptions' form plus "start" (default true): create and
// boot in one call. A sandbox that was made but could not boot is removed,
// so a failed request leaves nothing behind.
Response create(ServerState& state, Request& req) {
  // Bounded depth: the body is written back out with dump() below.
  auto parsed = parse_json_object(req.body, "sandbox", req.body.size());
  if (!parsed) return error_response(parsed.error());
  Json j = std::move(*parsed);
  bool start = true;
  if (j.contains("start")) {
    if (!j["start"].is_boolean()) return error_response(400, "invalid_argument", "sandbox.start: expected true or false");
    start = j["start"].get<bool>();
    j.erase("start");
  }
  auto options = sandbox_options_from_json_text(j.dump());
  if (!options) return error_response(options.error());
  auto info = create_sandbox(*options);
  if (!info) return error_response(info.error());
  if (start) {
    Status started = start_sandbox(info->id);
    if (!started) {
      (void)remove_sandbox(info->id, /*force=*/true);
      return error_response(started.error().wrap("start sandbox " + info->name));
    }
    state.note_started(info->id);
    auto now = inspect_sandbox(info->id);
    if (now) info = std::move(now);
  }
  return json_response(201, to_json_text(*info));
}

Response inspect(Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  return json_ok(to_json_text(*info));
}

Response start(ServerState& state, Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  Status s = start_sandbox(info->id);
  if (!s) return error_response(s.error());
  state.note_started(info->id);
  auto now = inspect_sandbox(info->id);
  if (!now) return error_response(now.error());
  return json_ok(to_json_text(*now));
}

void forget(ServerState& state, const std::string& id) {
  state.handles.forget(id);
  state.execs.forget_sandbox(id);
}

Response stop(ServerState& state, Request& req, bool restart) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto timeout = query_seconds(req, "timeout_s", std::chrono::seconds(10));
  if (!timeout) return error_response(timeout.error());
  forget(state, info->id);
  Status s = restart ? restart_sandbox(info->id, *timeout) : stop_sandbox(info->id, *timeout);
  if (!s) return error_response(s.error());
  if (restart) state.note_started(info->id);
  auto now = inspect_sandbox(info->id);
  if (!now) return error_response(now.error());
  return json_ok(to_json_text(*now));
}

// Pause (in memory, or to disk with ?to_disk=true) or resume; answers the
// record as it is then ("paused" and "saved" say which).
Response set_paused(Request& req, bool pause) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto to_disk = query_flag(req, "to_disk", false);
  if (!to_disk) return error_response(to_disk.error());
  Status s = pause ? pause_sandbox(info->id, {*to_disk}) : resume_sandbox(info->id);
  if (!s) return error_response(s.error());
  auto now = inspect_sandbox(info->id);
  if (!now) return error_response(now.error());
  return json_ok(to_json_text(*now));
}

Response remove(ServerState& state, Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto force = query_flag(req, "force", false);
  if (!force) return error_response(force.error());
  forget(state, info->id);
  Status s = remove_sandbox(info->id, *force);
  if (!s) return error_response(s.error());
  return no_content();
}

Response update_network(Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto update = network_update_from_json_text(req.body);
  if (!update) return error_response(update.error());
  Status s = update_sandbox_network(info->id, *update);
  if (!s) return error_response(s.error());
  auto now = inspect_sandbox(info->id);
  if (!now) return error_response(now.error());
  return json_ok(to_json_text(now->network));
}

Response stats(Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto s = sandbox_stats(info->id);
  if (!s) return error_response(s.error());
  Json j = Json::parse(to_json_text(*s));
  j["id"] = info->id;
  j["name"] = info->name;
  return json_ok(j.dump());
}

// The console as text; ?follow=true goes on while the sandbox runs. The
// command history is /history (NDJSON).
Response logs(Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto follow = query_flag(req, "follow", false);
  if (!follow) return error_response(follow.error());
  Response r;
  r.content_type = "text/plain; charset=utf-8";
  std::string id = info->id;
  bool f = *follow;
  r.stream = [id, f](int fd) {
    LogCallbacks cb;
    bool gone = false;
    cb.on_console = [&](std::string_view s) {
      if (!gone && !write_all_fd(fd, s)) gone = true;
    };
    // A follow ends when the sandbox stops or the reader leaves (noticed
    // within a poll interval, with or without output to write).
    cb.stop = [&] { return gone || reader_gone(fd); };
    (void)read_sandbox_logs(id, cb, f);
  };
  return r;
}

Response history(Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  Response r;
  r.content_type = "application/x-ndjson";
  std::string id = info->id;
  r.stream = [id](int fd) {
    LogCallbacks cb;
    bool gone = false;
    cb.on_exec_event = [&](const ExecEvent& e) {
      if (!gone && !write_all_fd(fd, to_json_text(e) + "\n")) gone = true;
    };
    (void)read_sandbox_logs(id, cb, false);
  };
  return r;
}

}  // namespace

void add_sandbox_routes(ServerState& s) {
  Router& r = s.router;
  r.add({"GET", "/v1/sandboxes", Route::Body::kNone, false, list});
  r.add({"POST", "/v1/sandboxes", Route::Body::kWhole, false, [&s](Request& req) {
           return s.idempotency.run("POST /v1/sandboxes", req.header("idempotency-key"), req.body,
                                    [&] { return create(s, req); });
         }});
  r.add({"GET", "/v1/sandboxes/{id}", Route::Body::kNone, false, inspect});
  r.add({"DELETE", "/v1/sandboxes/{id}", Route::Body::kNone, false, [&s](Request& req) { return remove(s, req); }});
  r.add({"POST", "/v1/sandboxes/{id}/start", Route::Body::kNone, false, [&s](Request& req) { return start(s, req); }});
  r.add({"POST", "/v1/sandboxes/{id}/stop", Route::Body::kNone, false,
         [&s](Request& req) { return stop(s, req, false); }});
  r.add({"POST", "/v1/sandboxes/{id}/restart", Route::Body::kNone, false,
         [&s](Request& req) { return stop(s, req, true); }});
  r.add({"POST", "/v1/sandboxes/{id}/pause", Route::Body::kNone, false,
         [](Request& req) { return set_paused(req, true); }});
  r.add({"POST", "/v1/sandboxes/{id}/resume", Route::Body::kNone, false,
         [](Request& req) { return set_paused(req, false); }});
  r.add({"PUT", "/v1/sandboxes/{id}/network", Route::Body::kWhole, false, update_network});
  r.add({"GET", "/v1/sandboxes/{id}/stats", Route::Body::kNone, false, stats});
  r.add({"GET", "/v1/sandboxes/{id}/logs", Route::Body::kNone, false, logs});
  r.add({"GET", "/v1/sandboxes/{id}/history", Route::Body::kNone, false, history});
}

}  // namespace moat::server
