// /v1/volumes: named volumes (moat/volumes.h).
#include <nlohmann/json.hpp>

#include "moat/json.h"
#include "moat/volumes.h"
#include "server/api_error.h"
#include "server/route_support.h"
#include "server/server_state.h"
#include "util/json_object.h"

namespace moat::server {
namespace {

using Json = nlohmann::json;

Response list(Request&) {
  auto volumes = list_volumes();
  if (!volumes) return error_response(volumes.error());
  return json_ok("{\"volumes\":" + to_json_array_text(*volumes) + "}");
}

// Body: {"name": "...", "labels": {...}}.
Response create(Request& req) {
  auto parsed = parse_json_object(req.body, "volume", req.body.size());
  Json j = parsed ? std::move(*parsed) : Json();
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string())
    return error_response(400, "invalid_argument", "volume: expected {\"name\": \"NAME\", \"labels\": {...}}");
  std::map<std::string, std::string> labels;
  for (const auto& [key, value] : j.items()) {
    if (key == "name") continue;
    if (key != "labels" || !value.is_object())
      return error_response(400, "invalid_argument", "volume." + key + ": not a field of this form (or a wrong type)");
    for (const auto& [k, v] : value.items()) {
      if (!v.is_string()) return error_response(400, "invalid_argument", "volume.labels." + k + ": expected a string");
      labels[k] = v.get<std::string>();
    }
  }
  auto v = create_volume(j["name"].get<std::string>(), labels);
  if (!v) return error_response(v.error());
  return json_response(201, to_json_text(*v));
}

Response inspect(Request& req) {
  auto v = inspect_volume(req.params["name"]);
  if (!v) return error_response(v.error());
  return json_ok(to_json_text(*v));
}

Response remove(Request& req) {
  auto force = query_flag(req, "force", false);
  if (!force) return error_response(force.error());
  Status s = remove_volume(req.params["name"], *force);
  if (!s) return error_response(s.error());
  return no_content();
}

}  // namespace

void add_volume_routes(ServerState& s) {
  Router& r = s.router;
  r.add({"GET", "/v1/volumes", Route::Body::kNone, false, list});
  r.add({"POST", "/v1/volumes", Route::Body::kWhole, false, [&s](Request& req) {
           return s.idempotency.run("POST /v1/volumes", req.header("idempotency-key"), req.body,
                                    [&] { return create(req); });
         }});
  r.add({"GET", "/v1/volumes/{name}", Route::Body::kNone, false, inspect});
  r.add({"DELETE", "/v1/volumes/{name}", Route::Body::kNone, false, remove});
}

}  // namespace moat::server
