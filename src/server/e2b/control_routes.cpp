// E2B's control plane (e2b-dev/infra spec/openapi.yml), the part an SDK
// needs for a sandbox's life: create, list, get, kill, timeout, pause and
// connect (which resumes a paused sandbox). Errors are {"code", "message"}
// with the HTTP status, which the SDK maps to its error types.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "moat/json.h"
#include "moat/sandboxes.h"
#include "moat/stats.h"
#include "server/bearer_token.h"
#include "server/e2b/e2b_service.h"
#include "server/e2b/entry_info.h"
#include "server/e2b/string_map.h"
#include "server/route_support.h"
#include "server/server_state.h"
#include "util/json_object.h"

namespace moat::server::e2b {
namespace {

using Json = nlohmann::json;

constexpr std::size_t kMaxCreateBody = 1 << 20;

std::string time_text(Clock::time_point t) {
  return timestamp_text(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

Result<int> timeout_of(const Json& body, int fallback) {
  if (!body.contains("timeout") || body["timeout"].is_null()) return fallback;
  const Json& t = body["timeout"];
  if (!t.is_number_integer() || t.get<long long>() < 0 || t.get<long long>() > kMaxTimeoutS)
    return make_error("timeout: expected whole seconds, 0 to " + std::to_string(kMaxTimeoutS), EINVAL);
  return t.get<int>();
}

Result<Json> body_of(const Request& req) {
  if (req.body.empty()) return Json::object();
  return parse_json_object(req.body, "body", kMaxCreateBody);
}

// What E2B's Sandbox schema says of a sandbox (create, connect).
Json sandbox_json(const E2bSandbox& s) {
  return Json{{"templateID", s.template_id}, {"sandboxID", s.id},      {"clientID", "moat"},
              {"envdVersion", kEnvdVersion}, {"envdAccessToken", s.access_token}, {"domain", nullptr}};
}

// ListedSandbox / SandboxDetail.
Json listed_json(const E2bSandbox& s, bool paused, bool detail) {
  Json j = {{"templateID", s.template_id},
            {"sandboxID", s.id},
            {"clientID", "moat"},
            {"startedAt", time_text(s.started_at)},
            {"endAt", time_text(s.end_at)},
            {"cpuCount", s.cpus},
            {"memoryMB", s.memory_mib},
            {"diskSizeMB", 4096},
            {"metadata", s.metadata},
            {"state", paused ? "paused" : "running"},
            {"envdVersion", kEnvdVersion}};
  if (detail) {
    j["envdAccessToken"] = s.access_token;
    j["domain"] = nullptr;
  }
  return j;
}

// E2B's egress lists as moat rules: allowOut before denyOut (in E2B an
// allowed target wins over a denied range), the first match deciding as
// moat's rules do. Entries are moat rule text (IP, CIDR, domain, *.suffix,
// moat's @classes, :PORT), so every E2B entry is one; each is checked when
// the sandbox is made or updated. What else E2B's network object carries
// (transform rules, an egress proxy, public inbound traffic) is refused.
Result<std::vector<NetworkRule>> egress_rules(const Json& network) {
  std::vector<NetworkRule> rules;
  if (network.is_null()) return rules;
  if (!network.is_object()) return make_error("network: expected an object", EINVAL);
  for (auto it = network.begin(); it != network.end(); ++it) {
    bool allow = it.key() == "allowOut";
    if (!allow && it.key() != "denyOut") {
      if (it.value().is_null()) continue;
      return make_error("network." + it.key() + " is not supported by moat's E2B API (docs/e2b.md)", EINVAL);
    }
    if (!it.value().is_array()) return make_error("network." + it.key() + ": expected a list of targets", EINVAL);
    for (const Json& target : it.value()) {
      if (!target.is_string()) return make_error("network." + it.key() + ": expected strings", EINVAL);
      if (rules.size() >= kMaxNetworkRules) return make_error("network: more than 1024 rules", EINVAL);
      rules.push_back(NetworkRule{allow, target.get<std::string>()});
    }
  }
  std::stable_partition(rules.begin(), rules.end(), [](const NetworkRule& r) { return r.allow; });
  return rules;
}

// Fields of E2B's create that moat cannot honour are refused by name, not
// dropped: a caller that asked for them must know.
Status refuse_unsupported(const Json& body) {
  static const char* kRefused[] = {"mcp", "volumeMounts", "iam", "autoResume"};
  for (const char* f : kRefused)
    if (body.contains(f) && !body[f].is_null() && !(body[f].is_object() && body[f].empty()))
      return make_error(std::string(f) + " is not supported by moat's E2B API (docs/e2b.md)", EINVAL);
  if (body.contains("autoPause") && body["autoPause"].is_boolean() && body["autoPause"].get<bool>())
    return make_error("autoPause is not supported by moat's E2B API: a sandbox past its timeout is removed", EINVAL);
  return ok_status();
}

Response create(ServerState& state, E2bService& svc, Request& req) {
  if (auto denied = svc.check_api_key(req)) return *denied;
  auto body = body_of(req);
  if (!body) return api_error(body.error());
  if (Status s = refuse_unsupported(*body); !s) return api_error(s.error());
  std::string template_id = "base";
  if (body->contains("templateID")) {
    if (!(*body)["templateID"].is_string()) return api_error(400, "templateID: expected a string");
    template_id = (*body)["templateID"].get<std::string>();
  }
  auto tmpl = svc.templates.find(template_id);
  if (!tmpl) return api_error(tmpl.error());
  auto timeout = timeout_of(*body, kDefaultTimeoutS);
  if (!timeout) return api_error(timeout.error());
  auto metadata = string_map_of(body->value("metadata", Json()), "metadata");
  if (!metadata) return api_error(metadata.error());
  auto env_vars = string_map_of(body->value("envVars", Json()), "envVars");
  if (!env_vars) return api_error(env_vars.error());
  for (const auto& [k, v] : *env_vars)
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      return api_error(400, "envVars: bad variable name '" + k + "'");

  SandboxOptions o;
  o.image = tmpl->image;
  o.insecure_registry = tmpl->insecure_registry;
  o.cpus = tmpl->cpus;
  o.memory_mib = tmpl->memory_mib;
  o.labels["e2b.template"] = template_id;
  if (body->contains("allow_internet_access") && (*body)["allow_internet_access"].is_boolean() &&
      !(*body)["allow_internet_access"].get<bool>())
    o.network.mode = NetworkMode::kNone;
  auto rules = egress_rules(body->value("network", Json()));
  if (!rules) return api_error(rules.error());
  o.network.rules = std::move(*rules);
  if (Status valid = validate_network(o.network); !valid) return api_error(valid.error());
  auto info = create_sandbox(o);
  if (!info) return api_error(info.error());
  if (Status started = start_sandbox(info->id); !started) {
    (void)remove_sandbox(info->id, /*force=*/true);
    return api_error(started.error().wrap("start sandbox for template " + template_id));
  }
  state.note_started(info->id);
  auto token = random_hex_token(24);
  if (!token) {
    (void)remove_sandbox(info->id, true);
    return api_error(token.error());
  }

  E2bSandbox s;
  s.id = info->id;
  s.template_id = template_id;
  s.access_token = std::move(*token);
  s.user = tmpl->user;
  s.metadata = std::move(*metadata);
  s.env_vars = std::move(*env_vars);
  s.started_at = Clock::now();
  s.end_at = s.started_at + std::chrono::seconds(*timeout);
  s.cpus = tmpl->cpus;
  s.memory_mib = tmpl->memory_mib;
  if (!svc.sandboxes.add(s)) {
    (void)remove_sandbox(info->id, true);
    return api_error(429, "this server holds too many E2B sandboxes");
  }
  Response r;
  r.status = 201;
  r.body = sandbox_json(s).dump();
  return r;
}

// Whether the sandbox is paused, or nullopt when moat's sandbox is no longer
// running (its guest powered off or crashed, or someone stopped it): it
// then leaves the E2B list, as E2B forgets a sandbox that ended; its moat
// record stays for `moat logs` until `moat rm`.
std::optional<bool> paused_if_alive(E2bService& svc, const std::string& id) {
  auto info = inspect_sandbox(id);
  if (info && info->state == SandboxState::kRunning) return info->paused;
  svc.sandboxes.erase(id);
  svc.forget(id);
  return std::nullopt;
}

// ?metadata=k%3Dv%26k2%3Dv2 (URL-encoded "k=v&k2=v2"), ?state=running,paused.
bool matches(const E2bSandbox& s, bool paused, const Request& req) {
  if (const std::string* state = req.query_value("state")) {
    bool want_running = state->find("running") != std::string::npos;
    bool want_paused = state->find("paused") != std::string::npos;
    if (paused ? !want_paused : !want_running) return false;
  }
  if (const std::string* meta = req.query_value("metadata")) {
    auto pairs = parse_query(*meta);
    if (!pairs) return false;
    for (const auto& [k, v] : *pairs) {
      auto it = s.metadata.find(k);
      if (it == s.metadata.end() || it->second != v) return false;
    }
  }
  if (const std::string* t = req.query_value("template"))
    if (!t->empty() && *t != s.template_id) return false;
  return true;
}

Response list(E2bService& svc, Request& req) {
  if (auto denied = svc.check_api_key(req)) return *denied;
  Json out = Json::array();
  for (const E2bSandbox& s : svc.sandboxes.list()) {
    auto paused = paused_if_alive(svc, s.id);
    if (paused && matches(s, *paused, req)) out.push_back(listed_json(s, *paused, false));
  }
  Response r;
  r.body = out.dump();
  return r;
}

struct Known {
  E2bSandbox sandbox;
  bool paused = false;
};

// The E2B sandbox {id} names, alive; ENOENT otherwise.
Result<Known> known(E2bService& svc, const Request& req) {
  std::string id = req.params.at("id");
  auto s = svc.sandboxes.find(id);
  auto paused = s ? paused_if_alive(svc, id) : std::nullopt;
  if (!paused) return make_error("sandbox " + id + " not found", ENOENT);
  return Known{std::move(*s), *paused};
}

Response get(E2bService& svc, Request& req) {
  if (auto denied = svc.check_api_key(req)) return *denied;
  auto s = known(svc, req);
  if (!s) return api_error(s.error());
  Response r;
  r.body = listed_json(s->sandbox, s->paused, true).dump();
  return r;
}

Response kill(E2bService& svc, Request& req) {
  if (auto denied = svc.check_api_key(req)) return *denied;
  auto s = known(svc, req);
  if (!s) return api_error(s.error());
  Status killed = svc.kill(s->sandbox.id);
  if (!killed && killed.error().kind() != ErrorKind::kNotFound) return api_error(killed.error());
  return no_content();
}

// POST .../timeout {"timeout": S}: the sandbox now ends S seconds from now
// (longer or shorter than before, as E2B's setTimeout).
Response set_timeout(E2bService& svc, Request& req) {
  if (auto denied = svc.check_api_key(req)) return *denied;
  auto s = known(svc, req);
  if (!s) return api_error(s.error());
  auto body = body_of(req);
  if (!body) return api_error(body.error());
  if (!body->contains("timeout")) return api_error(400, "timeout: missing");
  auto timeout = timeout_of(*body, 0);
  if (!timeout) return api_error(timeout.error());
  svc.sandboxes.set_end(s->sandbox.id, Clock::now() + std::chrono::seconds(*timeout));
  return no_content();
}

// POST .../refreshes {"duration": S}: ends no sooner than S seconds from now.
Response refresh(E2bService& svc, Request& req) {
  if (auto denied = svc.check_api_key(req)) return *denied;
  auto s = known(svc, req);
  if (!s) return api_error(s.error());
  auto body = body_of(req);
  if (!body) return api_error(body.error());
  int duration = kDefaultTimeoutS;
  if (body->contains("duration")) {
    const Json& d = (*body)["duration"];
    if (!d.is_number_integer() || d.get<long long>() < 0 || d.get<long long>() > 3600)
      return api_error(400, "duration: expected whole seconds, 0 to 3600");
    duration = d.get<int>();
  }
  auto end = Clock::now() + std::chrono::seconds(duration);
  if (end > s->sandbox.end_at) svc.sandboxes.set_end(s->sandbox.id, end);
  return no_content();
}

Response pause(E2bService& svc, Request& req) {
  if (auto denied = svc.check_api_key(req)) return *denied;
  auto s = known(svc, req);
  if (!s) return api_error(s.error());
  auto body = body_of(req);
  if (!body) return api_error(body.error());
  if (body->contains("memory") && (*body)["memory"].is_boolean() && !(*body)["memory"].get<bool>())
    return api_error(400, "pause without memory (keepMemory: false) is not supported: moat pauses a sandbox in memory");
  if (s->paused) return api_error(409, "sandbox " + s->sandbox.id + " is already paused");
  if (Status p = pause_sandbox(s->sandbox.id); !p) return api_error(p.error());
  return no_content();
}

// Connect (and the older resume): a paused sandbox resumes; the timeout, if
// given, ends it no sooner than that many seconds from now.
Response connect(E2bService& svc, Request& req, bool resume_only) {
  if (auto denied = svc.check_api_key(req)) return *denied;
  auto s = known(svc, req);
  if (!s) return api_error(s.error());
  auto body = body_of(req);
  if (!body) return api_error(body.error());
  auto timeout = timeout_of(*body, -1);
  if (!timeout) return api_error(timeout.error());
  bool paused = s->paused;
  if (resume_only && !paused) return api_error(409, "sandbox " + s->sandbox.id + " is not paused");
  if (paused) {
    if (Status r = resume_sandbox(s->sandbox.id); !r) return api_error(r.error());
  }
  if (*timeout >= 0) {
    auto end = Clock::now() + std::chrono::seconds(*timeout);
    if (end > s->sandbox.end_at) svc.sandboxes.set_end(s->sandbox.id, end);
  }
  Response r;
  r.status = paused ? 201 : 200;
  r.body = sandbox_json(s->sandbox).dump();
  return r;
}

// PUT .../network {"allowOut", "denyOut", "allow_internet_access"}: the
// egress lists replace the sandbox's rules whole (omitted lists clear them,
// as E2B's update does); allow_internet_access switches between moat's
// `public` and `none`.
Response update_network(E2bService& svc, Request& req) {
  if (auto denied = svc.check_api_key(req)) return *denied;
  auto s = known(svc, req);
  if (!s) return api_error(s.error());
  auto body = body_of(req);
  if (!body) return api_error(body.error());
  NetworkPolicyUpdate update;
  Json lists = *body;
  if (lists.contains("allow_internet_access")) {
    const Json& a = lists["allow_internet_access"];
    if (!a.is_boolean()) return api_error(400, "allow_internet_access: expected true or false");
    update.mode = a.get<bool>() ? NetworkMode::kPublic : NetworkMode::kNone;
    lists.erase("allow_internet_access");
  }
  auto rules = egress_rules(lists);
  if (!rules) return api_error(rules.error());
  update.rules = std::move(*rules);
  if (Status st = update_sandbox_network(s->sandbox.id, update); !st) return api_error(st.error());
  return no_content();
}

// GET .../metrics: one sample, now (E2B keeps a series; moat reads the
// sandbox's counters when asked).
Response metrics(E2bService& svc, Request& req) {
  if (auto denied = svc.check_api_key(req)) return *denied;
  auto s = known(svc, req);
  if (!s) return api_error(s.error());
  auto st = sandbox_stats(s->sandbox.id);
  if (!st) return api_error(st.error());
  Json sample = Json::parse(to_json_text(*st), nullptr, false);
  Json out = {{"timestamp", time_text(Clock::now())},
              {"timestampUnix", std::chrono::duration_cast<std::chrono::seconds>(
                                    Clock::now().time_since_epoch()).count()},
              {"cpuCount", s->sandbox.cpus},
              {"memTotal", static_cast<std::uint64_t>(s->sandbox.memory_mib) << 20}};
  if (sample.is_object()) out["moat"] = sample;
  Response r;
  r.body = Json::array({out}).dump();
  return r;
}

}  // namespace

void add_e2b_control_routes(ServerState& st, E2bService& svc) {
  Router& r = st.router;
  auto own = [](Route route) {
    route.own_auth = true;
    return route;
  };
  auto create_route = [&st, &svc](Request& req) { return create(st, svc, req); };
  r.add(own({"POST", "/sandboxes", Route::Body::kWhole, false, create_route}));
  r.add(own({"POST", "/v2/sandboxes", Route::Body::kWhole, false, create_route}));
  r.add(own({"GET", "/sandboxes", Route::Body::kNone, false, [&svc](Request& req) { return list(svc, req); }}));
  r.add(own({"GET", "/v2/sandboxes", Route::Body::kNone, false, [&svc](Request& req) { return list(svc, req); }}));
  r.add(own({"GET", "/sandboxes/{id}", Route::Body::kNone, false, [&svc](Request& req) { return get(svc, req); }}));
  r.add(own({"DELETE", "/sandboxes/{id}", Route::Body::kNone, false, [&svc](Request& req) { return kill(svc, req); }}));
  r.add(own({"POST", "/sandboxes/{id}/timeout", Route::Body::kWhole, false,
             [&svc](Request& req) { return set_timeout(svc, req); }}));
  r.add(own({"POST", "/sandboxes/{id}/refreshes", Route::Body::kWhole, false,
             [&svc](Request& req) { return refresh(svc, req); }}));
  r.add(own({"POST", "/sandboxes/{id}/pause", Route::Body::kWhole, false,
             [&svc](Request& req) { return pause(svc, req); }}));
  r.add(own({"POST", "/sandboxes/{id}/resume", Route::Body::kWhole, false,
             [&svc](Request& req) { return connect(svc, req, true); }}));
  r.add(own({"POST", "/sandboxes/{id}/connect", Route::Body::kWhole, false,
             [&svc](Request& req) { return connect(svc, req, false); }}));
  r.add(own({"POST", "/v2/sandboxes/{id}/connect", Route::Body::kWhole, false,
             [&svc](Request& req) { return connect(svc, req, false); }}));
  r.add(own({"PUT", "/sandboxes/{id}/network", Route::Body::kWhole, false,
             [&svc](Request& req) { return update_network(svc, req); }}));
  r.add(own({"GET", "/sandboxes/{id}/metrics", Route::Body::kNone, false,
             [&svc](Request& req) { return metrics(svc, req); }}));
}

}  // namespace moat::server::e2b
