#include "image/registry/registry_login.h"

#include <cerrno>
#include <nlohmann/json.hpp>

#include "image/registry/http_client.h"
#include "image/oci/reference.h"

namespace moat::image {
namespace {

constexpr std::size_t kMaxTokenResponse = 1 << 20;

Error rejected(const std::string& registry, long status) {
  return make_error("login to " + registry + " failed: the registry rejected the credentials (" +
                        std::to_string(status) + ")",
                    EACCES);
}

Error unexpected(const std::string& what, long status) {
  return make_error(what + " answered HTTP " + std::to_string(status), EPROTO);
}

std::string basic_header(const Credentials& c) {
  return "Authorization: Basic " + base64_encode(c.username + ":" + c.password);
}

Result<HttpResponse> get(HttpClient& http, const std::string& url, const std::string& header) {
  HttpRequest req;
  req.url = url;
  if (!header.empty()) req.headers.push_back(header);
  req.max_body = kMaxTokenResponse;
  auto resp = http.perform(req);
  if (!resp) return resp.error().wrap("GET " + url);
  return resp;
}

Status token_login(HttpClient& http, const std::string& registry, const std::string& v2,
                   const AuthChallenge& bearer, const Credentials& c, const LoginOptions& options) {
  auto realm = bearer.params.find("realm");
  if (realm == bearer.params.end() || realm->second.empty()) {
    return make_error("login to " + registry + ": Bearer challenge without a realm", EPROTO);
  }
  std::string scheme = url_scheme(realm->second);
  if (scheme != "https" && !(scheme == "http" && options.insecure)) {
    return make_error("login to " + registry + ": refusing token realm " + realm->second +
                          " (not https; use --insecure for a plain-http registry)",
                      EPROTO);
  }
  std::string url = realm->second + (realm->second.find('?') == std::string::npos ? "?" : "&");
  if (auto s = bearer.params.find("service"); s != bearer.params.end()) {
    url += "service=" + url_escape(s->second) + "&";
  }
  url += "account=" + url_escape(c.username);
  MOAT_ASSIGN_OR_RETURN(HttpResponse tok, get(http, url, basic_header(c)));
  if (tok.status == 401 || tok.status == 403) return rejected(registry, tok.status);
  if (tok.status != 200) return unexpected("token endpoint " + realm->second, tok.status);
  auto doc = nlohmann::json::parse(tok.body, nullptr, /*allow_exceptions=*/false);
  std::string token;
  if (doc.is_object()) {
    for (const char* key : {"token", "access_token"}) {
      if (auto t = doc.find(key); t != doc.end() && t->is_string() && !t->get<std::string>().empty()) {
        token = t->get<std::string>();
        break;
      }
    }
  }
  if (token.empty()) return make_error("login to " + registry + ": token response without a token", EPROTO);
  for (char ch : token) {
    if (ch < 0x21 || ch > 0x7e) return make_error("login to " + registry + ": token is not visible ASCII", EPROTO);
  }
  MOAT_ASSIGN_OR_RETURN(HttpResponse check, get(http, v2, "Authorization: Bearer " + token));
  if (check.status == 401) return rejected(registry, check.status);
  if (check.status != 200) return unexpected(v2, check.status);
  return ok_status();
}

}  // namespace

Status verify_registry_login(const std::string& registry, const Credentials& c,
                             const LoginOptions& options) {
  Reference ref;
  ref.registry = registry;
  std::string v2 = std::string(options.insecure ? "http://" : "https://") + ref.api_host() + "/v2/";
  HttpClient http;
  MOAT_ASSIGN_OR_RETURN(HttpResponse first, get(http, v2, ""));
  if (first.status == 200) return ok_status();
  if (first.status != 401) return unexpected(v2, first.status);
  const AuthChallenge* basic = nullptr;
  const AuthChallenge* bearer = nullptr;
  std::vector<AuthChallenge> challenges;
  for (const auto& value : first.headers.get_all("www-authenticate")) {
    auto parsed = parse_www_authenticate(value);
    if (!parsed) continue;
    for (auto& ch : *parsed) challenges.push_back(std::move(ch));
  }
  for (const auto& ch : challenges) {
    if (ch.scheme == "bearer" && !bearer) bearer = &ch;
    if (ch.scheme == "basic" && !basic) basic = &ch;
  }
  if (bearer) return token_login(http, registry, v2, *bearer, c, options);
  if (!basic) return make_error("login to " + registry + ": 401 without a Basic or Bearer challenge", EPROTO);
  MOAT_ASSIGN_OR_RETURN(HttpResponse second, get(http, v2, basic_header(c)));
  if (second.status == 401) return rejected(registry, second.status);
  if (second.status != 200) return unexpected(v2, second.status);
  return ok_status();
}

}  // namespace moat::image
