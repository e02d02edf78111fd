// /v1/images: the image store (moat/images.h). A pull streams its progress
// as NDJSON (or server-sent events) and ends with the image or the error.
#include <mutex>

#include <nlohmann/json.hpp>

#include "moat/images.h"
#include "moat/json.h"
#include "server/api_error.h"
#include "server/route_support.h"
#include "server/server_state.h"
#include "util/json_object.h"

namespace moat::server {
namespace {

using Json = nlohmann::json;

std::string ref_of(const Request& req) {
  auto it = req.params.find("ref");
  // {ref*} keeps the leading slash of the rest of the path.
  return it == req.params.end() ? std::string() : it->second.substr(1);
}

Response list(Request&) {
  auto images = list_images();
  if (!images) return error_response(images.error());
  return json_ok("{\"images\":" + to_json_array_text(*images) + "}");
}

Response inspect(Request& req) {
  auto d = inspect_image(ref_of(req));
  if (!d) return error_response(d.error());
  return json_ok(to_json_text(*d));
}

Response remove(Request& req) {
  Status s = remove_image(ref_of(req));
  if (!s) return error_response(s.error());
  return no_content();
}

std::string progress_json(const PullProgress& p) {
  return Json{{"status", "progress"}, {"layer", p.layer},           {"layers", p.layers},
              {"digest", p.digest},   {"layer_done", p.layer_done}, {"layer_total", p.layer_total},
              {"layer_complete", p.layer_complete}, {"done", p.done}, {"total", p.total},
              {"layers_done", p.layers_done}}
      .dump();
}

// Body: {"ref", "platform", "insecure_registry"}. The answer is a stream:
// progress records, then {"status": "pulled", "image": ...} or
// {"status": "error", "error": {...}}.
Response pull(Request& req) {
  auto parsed = parse_json_object(req.body, "pull", req.body.size());
  Json j = parsed ? std::move(*parsed) : Json();
  if (!j.is_object() || !j.contains("ref") || !j["ref"].is_string())
    return error_response(400, "invalid_argument", "pull: expected {\"ref\": \"IMAGE\", ...}");
  PullOptions options;
  for (const auto& [key, value] : j.items()) {
    if (key == "ref") continue;
    if (key == "platform" && value.is_string()) {
      options.platform = value.get<std::string>();
    } else if (key == "insecure_registry" && value.is_boolean()) {
      options.insecure_registry = value.get<bool>();
    } else {
      return error_response(400, "invalid_argument", "pull." + key + ": not a field of this form (or a wrong type)");
    }
  }
  std::string ref = j["ref"].get<std::string>();
  Response r;
  r.content_type = stream_content_type(req);
  bool sse = wants_event_stream(req);
  r.stream = [ref, options, sse](int fd) mutable {
    auto record = [sse](const std::string& json) { return stream_record(sse, json); };
    std::mutex mu;  // reports come from the download threads
    bool gone = false;
    std::uint64_t last_done = 0;
    options.on_progress = [&](const PullProgress& p) {
      std::lock_guard lock(mu);
      // Every layer's completion, and at most one report per 256 KiB.
      if (gone || (!p.layer_complete && p.done - last_done < (256u << 10) && p.done != p.total)) return;
      last_done = p.done;
      if (!write_all_fd(fd, record(progress_json(p)))) gone = true;
    };
    auto pulled = pull_image(ref, options);
    std::lock_guard lock(mu);
    if (gone) return;
    if (!pulled) {
      Json e = Json::parse(error_json(to_string(pulled.error().kind()), pulled.error().message));
      e["status"] = "error";
      (void)write_all_fd(fd, record(e.dump()));
      return;
    }
    (void)write_all_fd(fd, record(Json{{"status", "pulled"}, {"image", Json::parse(to_json_text(*pulled))}}.dump()));
  };
  return r;
}

}  // namespace

void add_image_routes(ServerState& s) {
  Router& r = s.router;
  r.add({"GET", "/v1/images", Route::Body::kNone, false, list});
  r.add({"POST", "/v1/images/pull", Route::Body::kWhole, false, pull});
  r.add({"GET", "/v1/images/{ref*}", Route::Body::kNone, false, inspect});
  r.add({"DELETE", "/v1/images/{ref*}", Route::Body::kNone, false, remove});
}

}  // namespace moat::server
