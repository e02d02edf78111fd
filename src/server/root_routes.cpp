// /v1/sandboxes/{id}/changes, /export and /commit: a sandbox's root read
// from its disks (moat/root_changes.h, docs/snapshots.md).
#include <nlohmann/json.hpp>

#include "moat/json.h"
#include "moat/root_changes.h"
#include "server/api_error.h"
#include "server/route_support.h"
#include "server/server_state.h"
#include "util/json_object.h"

namespace moat::server {
namespace {

using Json = nlohmann::json;

Response changes(Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto list = diff_sandbox(info->id);
  if (!list) return error_response(list.error());
  return json_ok("{\"changes\":" + to_json_array_text(*list) + "}");
}

// The root as a tar, streamed. The sandbox is checked first, so a missing
// one is a 404; an error once the stream has begun can only cut it short.
Response export_root(Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  Response r;
  r.content_type = "application/x-tar";
  std::string id = info->id;
  r.stream = [id](int fd) { (void)export_sandbox(id, fd); };
  return r;
}

Result<std::vector<std::string>> strings_of(const Json& v, const std::string& what) {
  if (!v.is_array()) return make_error(what + ": expected an array of strings", EINVAL);
  std::vector<std::string> out;
  for (const auto& s : v) {
    if (!s.is_string()) return make_error(what + ": expected an array of strings", EINVAL);
    out.push_back(s.get<std::string>());
  }
  return out;
}

// Body: {"ref": NAME[:TAG], "changes": [...], "env": [...], "workdir": "/w", "message": "..."}.
Response commit(Request& req) {
  auto info = sandbox_of(req);
  if (!info) return error_response(info.error());
  auto parsed = parse_json_object(req.body, "commit", req.body.size());
  if (!parsed) return error_response(parsed.error());
  std::string ref;
  CommitOptions o;
  for (const auto& [key, value] : parsed->items()) {
    if (key == "ref" && value.is_string()) {
      ref = value.get<std::string>();
    } else if (key == "changes" || key == "env") {
      auto list = strings_of(value, "commit." + key);
      if (!list) return error_response(list.error());
      (key == "changes" ? o.changes : o.env) = std::move(*list);
    } else if ((key == "workdir" || key == "message") && value.is_string()) {
      (key == "workdir" ? o.workdir : o.message) = value.get<std::string>();
    } else {
      return error_response(400, "invalid_argument", "commit." + key + ": not a field of this form (or a wrong type)");
    }
  }
  if (ref.empty()) return error_response(400, "invalid_argument", "commit: expected {\"ref\": \"NAME[:TAG]\", ...}");
  auto img = commit_sandbox(info->id, ref, o);
  if (!img) return error_response(img.error());
  return json_response(201, to_json_text(*img));
}

}  // namespace

void add_root_routes(ServerState& s) {
  Router& r = s.router;
  r.add({"GET", "/v1/sandboxes/{id}/changes", Route::Body::kNone, false, changes});
  r.add({"GET", "/v1/sandboxes/{id}/export", Route::Body::kNone, false, export_root});
  r.add({"POST", "/v1/sandboxes/{id}/commit", Route::Body::kWhole, false, commit});
}

}  // namespace moat::server
