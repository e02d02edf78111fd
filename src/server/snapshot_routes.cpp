// /v1/snapshots and /v1/sandboxes/{id}/fork: disk snapshots and forks
// (moat/snapshots.h, docs/snapshots.md). A sandbox starts from a snapshot
// through POST /v1/sandboxes with "from_snapshot".
#include <nlohmann/json.hpp>

#include "moat/json.h"
#include "moat/snapshots.h"
#include "server/api_error.h"
#include "server/route_support.h"
#include "server/server_state.h"
#include "util/json_object.h"

namespace moat::server {
namespace {

using Json = nlohmann::json;

constexpr double kMaxFreezeSeconds = 600;

Response list(Request&) {
  auto snapshots = list_snapshots();
  if (!snapshots) return error_response(snapshots.error());
  return json_ok("{\"snapshots\":" + to_json_array_text(*snapshots) + "}");
}

Result<std::map<std::string, std::string>> labels_of(const Json& value, const std::string& what) {
  if (!value.is_object()) return make_error(what + ": expected an object of strings", EINVAL);
  std::map<std::string, std::string> labels;
  for (const auto& [k, v] : value.items()) {
    if (!v.is_string()) return make_error(what + "." + k + ": expected a string", EINVAL);
    labels[k] = v.get<std::string>();
  }
  return labels;
}

// Body: {"sandbox": ID_OR_NAME, "name": NAME, "labels": {...}, "freeze_timeout_s": S,
// "memory": BOOL}.
Response create(Request& req) {
  auto parsed = parse_json_object(req.body, "snapshot", req.body.size());
  if (!parsed) return error_response(parsed.error());
  const Json& j = *parsed;
  std::string sandbox, name;
  SnapshotOptions o;
  for (const auto& [key, value] : j.items()) {
    if ((key == "sandbox" || key == "name") && value.is_string()) {
      (key == "sandbox" ? sandbox : name) = value.get<std::string>();
    } else if (key == "labels") {
      auto labels = labels_of(value, "snapshot.labels");
      if (!labels) return error_response(labels.error());
      o.labels = std::move(*labels);
    } else if (key == "freeze_timeout_s" && value.is_number()) {
      double s = value.get<double>();
      if (!(s >= 1 && s <= kMaxFreezeSeconds))
        return error_response(400, "invalid_argument", "snapshot.freeze_timeout_s: between 1 and 600");
      o.freeze_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
    } else if (key == "memory" && value.is_boolean()) {
      o.memory = value.get<bool>();
    } else {
      return error_response(400, "invalid_argument", "snapshot." + key + ": not a field of this form (or a wrong type)");
    }
  }
  if (sandbox.empty() || name.empty())
    return error_response(400, "invalid_argument", "snapshot: expected {\"sandbox\": ID_OR_NAME, \"name\": NAME}");
  auto s = create_snapshot(sandbox, name, o);
  if (!s) return error_response(s.error());
  return json_response(201, to_json_text(*s));
}

Response inspect(Request& req) {
  auto s = inspect_snapshot(req.params["name"]);
  if (!s) return error_response(s.error());
  return json_ok(to_json_text(*s));
}

Response remove(Request& req) {
  Status s = remove_snapshot(req.params["name"]);
  if (!s) return error_response(s.error());
  return no_content();
}

// Body (may be empty): {"count": N, "name_prefix": P, "start": bool}.
Response fork(ServerState& state, Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  ForkOptions o;
  if (!req.body.empty()) {
    auto parsed = parse_json_object(req.body, "fork", req.body.size());
    if (!parsed) return error_response(parsed.error());
    for (const auto& [key, value] : parsed->items()) {
      if (key == "count" && value.is_number_integer()) {
        auto n = value.get<std::int64_t>();
        if (n < 1 || n > 64) return error_response(400, "invalid_argument", "fork.count: between 1 and 64");
        o.count = static_cast<int>(n);
      } else if (key == "name_prefix" && value.is_string()) {
        o.name_prefix = value.get<std::string>();
      } else if (key == "start" && value.is_boolean()) {
        o.start = value.get<bool>();
      } else if (key == "memory" && value.is_boolean()) {
        o.memory = value.get<bool>();
      } else {
        return error_response(400, "invalid_argument", "fork." + key + ": not a field of this form (or a wrong type)");
      }
    }
  }
  auto children = fork_sandbox(info->id, o);
  if (!children) return error_response(children.error());
  if (o.start)
    for (const auto& c : *children) state.note_started(c.id);
  return json_response(201, "{\"sandboxes\":" + to_json_array_text(*children) + "}");
}

}  // namespace

void add_snapshot_routes(ServerState& s) {
  Router& r = s.router;
  r.add({"GET", "/v1/snapshots", Route::Body::kNone, false, list});
  r.add({"POST", "/v1/snapshots", Route::Body::kWhole, false, [&s](Request& req) {
           return s.idempotency.run("POST /v1/snapshots", req.header("idempotency-key"), req.body,
                                    [&] { return create(req); });
         }});
  r.add({"GET", "/v1/snapshots/{name}", Route::Body::kNone, false, inspect});
  r.add({"DELETE", "/v1/snapshots/{name}", Route::Body::kNone, false, remove});
  r.add({"POST", "/v1/sandboxes/{id}/fork", Route::Body::kWhole, false, [&s](Request& req) {
           return s.idempotency.run("POST /v1/sandboxes/fork", req.header("idempotency-key"),
                                    req.params["id"] + "\n" + req.body, [&] { return fork(s, req); });
         }});
}

}  // namespace moat::server
