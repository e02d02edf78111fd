// The server itself and the whole home: health, version, events, metrics.
#include <nlohmann/json.hpp>

#include "moat/events.h"
#include "moat/json.h"
#include "moat/version.h"
#include "server/api_error.h"
#include "server/metrics_text.h"
#include "server/route_support.h"
#include "server/server_state.h"

namespace moat::server {
namespace {

using Json = nlohmann::json;

Response health(Request&) { return json_ok("{\"status\":\"ok\"}"); }

Response version_of(Request&) { return json_ok(Json{{"version", moat::version()}, {"api", "v1"}}.dump()); }


// ?after=SEQ&follow=true: the kept events after SEQ, then new ones as they
// come, as NDJSON or server-sent events.
Response events(Request& req) {
  auto after = query_number(req, "after", 0, UINT64_MAX);
  if (!after) return error_response(after.error());
  auto follow = query_flag(req, "follow", false);
  if (!follow) return error_response(follow.error());
  Response r;
  r.content_type = stream_content_type(req);
  bool sse = wants_event_stream(req);
  SandboxEventOptions o;
  o.after = *after;
  o.follow = *follow;
  r.stream = [o, sse](int fd) mutable {
    o.cancelled = [fd] { return reader_gone(fd); };
    (void)watch_sandbox_events(o, [&](const SandboxEvent& e) {
      std::string json = to_json_text(e);
      return write_all_fd(fd, sse ? "id: " + std::to_string(e.seq) + "\ndata: " + json + "\n\n" : json + "\n");
    });
  };
  return r;
}

Response metrics(ServerState& state, Request&) {
  auto all = list_sandboxes();
  if (!all) return error_response(all.error());
  std::vector<SandboxSample> samples;
  for (const auto& info : *all) {
    if (info.state != SandboxState::kRunning) continue;
    auto s = sandbox_stats(info.id);
    if (s) samples.push_back({info, *s});
  }
  Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_text(*all, samples, state.counters);
  return r;
}

}  // namespace

void add_system_routes(ServerState& s) {
  Router& r = s.router;
  r.add({"GET", "/v1/health", Route::Body::kNone, false, health});
  r.add({"GET", "/v1/version", Route::Body::kNone, false, version_of});
  r.add({"GET", "/v1/events", Route::Body::kNone, false, events});
  r.add({"GET", "/metrics", Route::Body::kNone, false, [&s](Request& req) { return metrics(s, req); }});
}

}  // namespace moat::server
