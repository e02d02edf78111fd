#include "image/registry/registry_auth.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "image/oci/reference.h"
#include "util/ascii_case.h"
#include "util/read_file.h"
#include "util/write_file_atomic.h"

namespace moat::image {
namespace {

constexpr std::size_t kMaxDockerConfig = 1 << 20;

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) !=
                                                            std::string_view::npos;
}

void skip_space(std::string_view s, std::size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
}

std::string read_token(std::string_view s, std::size_t& i) {
  std::size_t start = i;
  while (i < s.size() && is_token_char(s[i])) ++i;
  return std::string(s.substr(start, i - start));
}

Result<std::string> read_quoted(std::string_view s, std::size_t& i) {
  std::string out;
  ++i;  // opening quote
  while (i < s.size() && s[i] != '"') {
    if (s[i] == '\\' && i + 1 < s.size()) ++i;
    out.push_back(s[i++]);
  }
  if (i >= s.size()) return make_error("WWW-Authenticate: unterminated quoted string", EPROTO);
  ++i;
  return out;
}

Result<std::string> read_config_file(const std::string& path, bool* missing) {
  auto data = read_file_bounded(path, kMaxDockerConfig);
  if (!data && data.error().code == ENOENT) {
    *missing = true;
    return std::string();
  }
  if (!data && data.error().code == EFBIG) return make_error(path + " is too large", EFBIG);
  return data;
}

// The keys Docker itself writes for a registry: Docker Hub's is historic.
std::vector<std::string> config_keys(const std::string& registry) {
  if (registry == "docker.io") {
    return {"https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"};
  }
  return {registry, "https://" + registry, "http://" + registry, "https://" + registry + "/",
          "http://" + registry + "/"};
}

}  // namespace

Result<std::vector<AuthChallenge>> parse_www_authenticate(std::string_view s) {
  std::vector<AuthChallenge> out;
  std::size_t i = 0;
  while (true) {
    skip_space(s, i);
    while (i < s.size() && (s[i] == ',' || s[i] == ' ')) ++i;
    if (i >= s.size()) break;
    std::string scheme = read_token(s, i);
    if (scheme.empty()) return make_error("WWW-Authenticate: malformed challenge", EPROTO);
    AuthChallenge ch;
    ch.scheme = ascii_lower(scheme);
    // Parameters until a token that is not followed by '=' (the next scheme).
    while (true) {
      skip_space(s, i);
      while (i < s.size() && s[i] == ',') {
        ++i;
        skip_space(s, i);
      }
      std::size_t mark = i;
      std::string name = read_token(s, i);
      skip_space(s, i);
      if (name.empty() || i >= s.size() || s[i] != '=') {
        i = mark;
        break;
      }
      ++i;
      skip_space(s, i);
      std::string value;
      if (i < s.size() && s[i] == '"') {
        MOAT_ASSIGN_OR_RETURN(value, read_quoted(s, i));
      } else {
        value = read_token(s, i);
      }
      ch.params[ascii_lower(name)] = value;
    }
    out.push_back(std::move(ch));
    if (i < s.size() && !is_token_char(s[i]) && s[i] != ',' && s[i] != ' ') {
      return make_error("WWW-Authenticate: unexpected character", EPROTO);
    }
  }
  if (out.empty()) return make_error("WWW-Authenticate: no challenge", EPROTO);
  return out;
}

std::string default_docker_config_path() {
  if (const char* d = std::getenv("DOCKER_CONFIG"); d && *d) return std::string(d) + "/config.json";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.docker/config.json";
  return "";
}

Result<std::optional<Credentials>> docker_config_credentials(const std::string& registry,
                                                             const std::string& config_path) {
  std::string path = config_path.empty() ? default_docker_config_path() : config_path;
  if (path.empty()) return std::optional<Credentials>();
  bool missing = false;
  MOAT_ASSIGN_OR_RETURN(std::string text, read_config_file(path, &missing));
  if (missing) return std::optional<Credentials>();
  auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return make_error(path + ": not a JSON object", EINVAL);
  auto auths = json.find("auths");
  if (auths == json.end() || !auths->is_object()) return std::optional<Credentials>();
  for (const auto& key : config_keys(registry)) {
    auto e = auths->find(key);
    if (e == auths->end() || !e->is_object()) continue;
    Credentials c;
    if (auto a = e->find("auth"); a != e->end() && a->is_string() && !a->get<std::string>().empty()) {
      auto decoded = base64_decode(a->get<std::string>());
      if (!decoded) return decoded.error().wrap(path + ": auths." + key);
      auto colon = decoded->find(':');
      if (colon == std::string::npos) {
        return make_error(path + ": auths." + key + ": auth is not user:password", EINVAL);
      }
      c.username = decoded->substr(0, colon);
      c.password = decoded->substr(colon + 1);
      return std::optional<Credentials>(c);
    }
    auto u = e->find("username");
    auto p = e->find("password");
    if (u != e->end() && p != e->end() && u->is_string() && p->is_string()) {
      c.username = u->get<std::string>();
      c.password = p->get<std::string>();
      return std::optional<Credentials>(c);
    }
  }
  return std::optional<Credentials>();
}

std::string moat_auth_path(const std::string& moat_home) { return moat_home + "/auth.json"; }

Result<std::optional<Credentials>> stored_credentials(const std::string& registry,
                                                      const std::string& moat_home,
                                                      const std::string& docker_config_path) {
  auto own = docker_config_credentials(registry, moat_auth_path(moat_home));
  if (!own) return own.error();
  if (*own) return own;
  std::string docker = docker_config_path.empty() ? default_docker_config_path() : docker_config_path;
  if (docker.empty()) return std::optional<Credentials>();
  return docker_config_credentials(registry, docker);
}

Result<bool> write_auth_entry(const std::string& path, const std::string& registry,
                              const std::optional<Credentials>& credentials) {
  bool missing = false;
  MOAT_ASSIGN_OR_RETURN(std::string text, read_config_file(path, &missing));
  nlohmann::json doc = nlohmann::json::object();
  if (!missing && !text.empty()) {
    doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) return make_error(path + ": not a JSON object", EINVAL);
  }
  if (!doc.contains("auths") || !doc["auths"].is_object()) doc["auths"] = nlohmann::json::object();
  auto& auths = doc["auths"];
  bool existed = false;
  for (const auto& key : config_keys(registry)) existed = auths.erase(key) > 0 || existed;
  if (credentials) {
    auths[config_keys(registry).front()] = {
        {"auth", base64_encode(credentials->username + ":" + credentials->password)}};
  }
  MOAT_TRY(write_file_atomic(path, doc.dump(1, '\t') + "\n", 0600));
  return existed;
}

Result<std::string> normalize_registry_name(std::string_view text) {
  std::string s(text);
  for (std::string_view scheme : {"https://", "http://"}) {
    if (s.rfind(scheme, 0) == 0) s = s.substr(scheme.size());
  }
  if (auto slash = s.find('/'); slash != std::string::npos) s = s.substr(0, slash);
  if (s == "index.docker.io" || s == "registry-1.docker.io") s = "docker.io";
  if (s.empty()) return make_error("empty registry name", EINVAL);
  // A registry is what a reference's first component would be.
  auto ref = parse_reference(s + "/moat-login-check");
  if (!ref || (ref->registry != s && !(s == "docker.io" && ref->registry == "docker.io"))) {
    return make_error("'" + std::string(text.substr(0, 256)) + "' is not a registry host[:port]",
                      EINVAL);
  }
  return ref->registry;
}

}  // namespace moat::image
