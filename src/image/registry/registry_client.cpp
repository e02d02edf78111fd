#include "image/registry/registry_client.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "image/oci/digest.h"

namespace moat::image {
namespace {

constexpr int kMaxRedirects = 5;
constexpr std::size_t kMaxTokenResponse = 1 << 20;
constexpr std::size_t kMaxTokenLength = 16 << 10;

bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool retriable_status(long status) { return status == 429 || (status >= 500 && status <= 599); }

// EAGAIN marks a failure worth another attempt. Once the attempts are
// spent it is an I/O error reaching the registry (kind "io"): "busy" would
// tell the caller that something of theirs held a lock.
Error spent(Error e) {
  if (e.code == EAGAIN) e.code = EIO;
  return e;
}

// The "errors" array of a distribution-spec error body, as one line.
std::string registry_message(const std::string& body) {
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return "";
  auto errors = json.find("errors");
  if (errors == json.end() || !errors->is_array() || errors->empty()) return "";
  const auto& e = (*errors)[0];
  if (!e.is_object()) return "";
  std::string out;
  if (auto c = e.find("code"); c != e.end() && c->is_string()) out = c->get<std::string>();
  if (auto m = e.find("message"); m != e.end() && m->is_string()) {
    if (!out.empty()) out += ": ";
    out += m->get<std::string>();
  }
  // Whatever a server says goes to a terminal: keep it short and printable.
  if (out.size() > 200) out.resize(200);
  for (auto& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

bool header_safe(const std::string& v) {
  return std::all_of(v.begin(), v.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) < 0x7f;
  });
}

std::string accept_header() {
  return "Accept: " + std::string(media_type::kOciIndex) + ", " +
         std::string(media_type::kOciManifest) + ", " + std::string(media_type::kDockerList) + ", " +
         std::string(media_type::kDockerManifest);
}

// Parses the start offset of "bytes START-END/TOTAL".
std::optional<std::uint64_t> content_range_start(const std::string& v) {
  if (v.rfind("bytes ", 0) != 0) return std::nullopt;
  std::uint64_t n = 0;
  std::size_t i = 6;
  if (i >= v.size() || !std::isdigit(static_cast<unsigned char>(v[i]))) return std::nullopt;
  for (; i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])); ++i) {
    if (n > (UINT64_MAX - 9) / 10) return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(v[i] - '0');
  }
  if (i >= v.size() || v[i] != '-') return std::nullopt;
  return n;
}

}  // namespace

void backoff_sleep(int initial_ms, int attempt) {
  thread_local std::mt19937 rng{std::random_device{}()};
  long ms = initial_ms;
  for (int i = 1; i < attempt && ms < 8000; ++i) ms *= 2;
  ms = std::min(ms, 8000L);
  std::uniform_int_distribution<long> jitter(0, ms / 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms + jitter(rng)));
}

Result<std::unique_ptr<RegistryClient>> RegistryClient::create(const Reference& ref,
                                                               const RegistryOptions& options) {
  std::unique_ptr<RegistryClient> c(new RegistryClient(ref, options));
  if (options.credentials) {
    c->credentials_ = options.credentials;
  } else {
    auto creds = docker_config_credentials(ref.registry, options.docker_config_path);
    if (!creds) return creds.error().wrap("reading registry credentials");
    c->credentials_ = *creds;
  }
  return c;
}

std::string RegistryClient::base_url() const {
  return std::string(options_.insecure ? "http://" : "https://") + ref_.api_host() + "/v2/" +
         ref_.repository + "/";
}

Result<HttpResponse> RegistryClient::send(HttpClient& http, HttpRequest req) {
  const std::string registry_origin = url_origin(req.url);
  const std::vector<std::string> base_headers = req.headers;
  req.stall_timeout_s = options_.stall_timeout_s;
  bool authenticated = false;
  int hops = 0;
  while (true) {
    req.headers = base_headers;
    bool same_origin = url_origin(req.url) == registry_origin;
    if (same_origin) {
      std::lock_guard lock(auth_mu_);
      if (!auth_header_.empty()) req.headers.push_back(auth_header_);
    }
    MOAT_ASSIGN_OR_RETURN(HttpResponse resp, http.perform(req));
    if (resp.status == 401 && same_origin && !authenticated) {
      authenticated = true;
      MOAT_ASSIGN_OR_RETURN(bool can_retry, authenticate(http, resp));
      if (!can_retry) return resp;  // the caller reports the 401
      continue;
    }
    if (is_redirect(resp.status) && !resp.headers.get("location").empty()) {
      if (++hops > kMaxRedirects) return make_error("too many redirects from " + ref_.registry, EPROTO);
      MOAT_ASSIGN_OR_RETURN(std::string next, resolve_url(req.url, resp.headers.get("location")));
      if (url_scheme(next) != "https" && !options_.insecure) {
        return make_error("refusing redirect from " + ref_.registry + " to a non-https URL", EPROTO);
      }
      req.url = std::move(next);
      continue;
    }
    return resp;
  }
}

Result<bool> RegistryClient::authenticate(HttpClient& http, const HttpResponse& unauthorized) {
  std::string header = unauthorized.headers.get("www-authenticate");
  if (header.empty()) return false;
  MOAT_ASSIGN_OR_RETURN(auto challenges, parse_www_authenticate(header));
  const AuthChallenge* bearer = nullptr;
  const AuthChallenge* basic = nullptr;
  for (const auto& ch : challenges) {
    if (ch.scheme == "bearer" && !bearer) bearer = &ch;
    if (ch.scheme == "basic" && !basic) basic = &ch;
  }
  std::string value;
  if (bearer) {
    MOAT_ASSIGN_OR_RETURN(std::string token, fetch_token(http, *bearer));
    value = "Authorization: Bearer " + token;
  } else if (basic && credentials_) {
    value = "Authorization: Basic " +
            base64_encode(credentials_->username + ":" + credentials_->password);
  } else {
    return false;
  }
  std::lock_guard lock(auth_mu_);
  auth_header_ = std::move(value);
  return true;
}

Result<std::string> RegistryClient::fetch_token(HttpClient& http, const AuthChallenge& ch) {
  auto realm_it = ch.params.find("realm");
  if (realm_it == ch.params.end() || realm_it->second.empty()) {
    return make_error(ref_.registry + ": Bearer challenge without a realm", EPROTO);
  }
  const std::string& realm = realm_it->second;
  std::string scheme = url_scheme(realm);
  if (scheme != "https" && !(scheme == "http" && options_.insecure)) {
    // Credentials would travel in the clear (or to who knows what).
    return make_error(ref_.registry + ": refusing token realm '" + realm + "' (not https)", EPROTO);
  }
  std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
  bool first = true;
  auto add = [&](const std::string& k, const std::string& v) {
    url += (first ? "" : "&") + k + "=" + url_escape(v);
    first = false;
  };
  if (auto s = ch.params.find("service"); s != ch.params.end()) add("service", s->second);
  auto scope = ch.params.find("scope");
  add("scope", scope != ch.params.end() ? scope->second : "repository:" + ref_.repository + ":pull");

  HttpRequest req;
  req.url = url;
  req.max_body = kMaxTokenResponse;
  req.stall_timeout_s = options_.stall_timeout_s;
  if (credentials_) {
    req.headers.push_back("Authorization: Basic " +
                          base64_encode(credentials_->username + ":" + credentials_->password));
  }
  Result<HttpResponse> resp = make_error("no attempt", EAGAIN);
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    if (attempt > 1) backoff_sleep(options_.initial_backoff_ms, attempt - 1);
    resp = http.perform(req);
    if (!resp) {
      if (resp.error().code == EAGAIN) continue;
      return resp.error().wrap("fetching a registry token");
    }
    if (!retriable_status(resp->status)) break;
  }
  if (!resp) return spent(resp.error().wrap("fetching a registry token"));
  if (resp->status == 401 || resp->status == 403) {
    return make_error(ref_.registry + ": token server refused " +
                          (credentials_ ? "the configured credentials" : "anonymous access") + " (" +
                          std::to_string(resp->status) + ")",
                      EACCES);
  }
  if (resp->status != 200) {
    return make_error(ref_.registry + ": token server answered " + std::to_string(resp->status),
                      EPROTO);
  }
  auto json = nlohmann::json::parse(resp->body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return make_error(ref_.registry + ": token response is not a JSON object", EPROTO);
  }
  for (const char* key : {"token", "access_token"}) {
    auto t = json.find(key);
    if (t != json.end() && t->is_string() && !t->get<std::string>().empty()) {
      std::string token = t->get<std::string>();
      // It goes into a header line: no room for anything but visible ASCII.
      if (token.size() > kMaxTokenLength || !header_safe(token)) {
        return make_error(ref_.registry + ": token server sent a malformed token", EPROTO);
      }
      return token;
    }
  }
  return make_error(ref_.registry + ": token response has no token", EPROTO);
}

Error RegistryClient::http_error(const HttpResponse& resp, const std::string& what) const {
  std::string msg = registry_message(resp.body);
  std::string detail = msg.empty() ? "" : " (" + msg + ")";
  long s = resp.status;
  if (s == 401) {
    return make_error(what + ": unauthorized (401)" + detail + ": " +
                          (credentials_ ? "the registry rejected the credentials for " + ref_.registry
                                        : "the registry requires credentials and none are "
                                          "configured for " + ref_.registry +
                                              " (docker login / ~/.docker/config.json)"),
                      EACCES);
  }
  if (s == 403) return make_error(what + ": access denied (403)" + detail, EACCES);
  if (s == 404) return make_error(what + ": not found (404)" + detail, ENOENT);
  if (retriable_status(s)) {
    return make_error(what + ": registry error " + std::to_string(s) + detail, EAGAIN);
  }
  return make_error(what + ": unexpected HTTP status " + std::to_string(s) + detail, EPROTO);
}

Result<FetchedManifest> RegistryClient::get_manifest(const std::string& tag_or_digest) {
  bool by_digest = tag_or_digest.rfind("sha256:", 0) == 0;
  if (by_digest) MOAT_TRY(validate_digest(tag_or_digest));
  std::string what = by_digest ? "manifest " + tag_or_digest : "tag '" + tag_or_digest + "'";
  HttpRequest req;
  req.url = base_url() + "manifests/" + tag_or_digest;
  req.headers.push_back(accept_header());
  req.max_body = kMaxManifestSize;
  req.want_body = [](long status, const HttpHeaders&) { return status == 200; };
  std::string body;
  req.on_body = [&body](const char* p, std::size_t n) -> Status {
    if (body.size() + n > kMaxManifestSize) {
      return make_error("manifest larger than " + std::to_string(kMaxManifestSize) + " bytes",
                        EFBIG);
    }
    body.append(p, n);
    return ok_status();
  };

  Result<HttpResponse> resp = make_error("no attempt", EAGAIN);
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    if (attempt > 1) backoff_sleep(options_.initial_backoff_ms, attempt - 1);
    body.clear();
    resp = send(manifest_http_, req);
    if (!resp) {
      if (resp.error().code == EAGAIN) continue;
      return resp.error().wrap(what);
    }
    if (!retriable_status(resp->status)) break;
  }
  if (!resp) return spent(resp.error().wrap(what));
  if (resp->status != 200) return spent(http_error(*resp, what));

  FetchedManifest m;
  m.digest = sha256_digest(body);
  if (by_digest && m.digest != tag_or_digest) {
    return make_error(what + ": digest mismatch: the registry sent content with digest " + m.digest,
                      EBADMSG);
  }
  std::string claimed = resp->headers.get("docker-content-digest");
  if (!by_digest && !claimed.empty() && claimed.rfind("sha256:", 0) == 0 && claimed != m.digest) {
    return make_error(what + ": digest mismatch: Docker-Content-Digest says " + claimed +
                          " but the content hashes to " + m.digest,
                      EBADMSG);
  }
  std::string ct = resp->headers.get("content-type");
  m.media_type = ct.substr(0, ct.find(';'));
  while (!m.media_type.empty() && m.media_type.back() == ' ') m.media_type.pop_back();
  m.body = std::move(body);
  return m;
}

Status RegistryClient::fetch_blob_once(HttpClient& http, const Descriptor& desc,
                                       BlobWriter& writer,
                                       const std::function<void(std::uint64_t)>& progress) {
  HttpRequest req;
  req.url = base_url() + "blobs/" + desc.digest;
  req.range_start = writer.offset();
  Status problem;
  bool range_reset = false;
  req.want_body = [&](long status, const HttpHeaders& h) {
    if (status == 200) {
      // The whole blob, whether or not we asked for a range.
      if (writer.offset() > 0) problem = writer.restart();
      return problem.ok();
    }
    if (status == 206) {
      auto start = content_range_start(h.get("content-range"));
      if (start && *start == writer.offset()) return true;
      // Not the bytes we asked for: start over on the next attempt.
      problem = writer.restart();
      range_reset = true;
      return false;
    }
    return false;
  };
  req.on_body = [&](const char* p, std::size_t n) -> Status {
    MOAT_TRY(writer.write(p, n));
    bytes_received_ += n;
    if (progress) progress(n);
    return ok_status();
  };
  std::string what = "blob " + desc.digest;
  MOAT_ASSIGN_OR_RETURN(HttpResponse resp, send(http, req));
  MOAT_TRY(problem);
  if (range_reset) return make_error(what + ": server sent the wrong range", EAGAIN);
  if (resp.status == 416) {
    MOAT_TRY(writer.restart());
    return make_error(what + ": range not satisfiable", EAGAIN);
  }
  if (resp.status == 200 || resp.status == 206) {
    if (!writer.complete()) return make_error(what + ": response ended early", EAGAIN);
    return ok_status();
  }
  return http_error(resp, what);
}

Status RegistryClient::fetch_blob(const Descriptor& desc, const BlobStore& store,
                                  const std::function<void(std::uint64_t)>& progress) {
  MOAT_TRY(validate_digest(desc.digest));
  if (store.has(desc.digest, desc.size)) return ok_status();
  MOAT_ASSIGN_OR_RETURN(auto writer, store.begin(desc.digest, desc.size));
  HttpClient http;
  Status last;
  for (int attempt = 1; attempt <= options_.max_attempts && !writer->complete(); ++attempt) {
    if (attempt > 1) backoff_sleep(options_.initial_backoff_ms, attempt - 1);
    last = fetch_blob_once(http, desc, *writer, progress);
    if (last.ok()) break;
    if (last.error().code != EAGAIN) {
      // Too big, refused, not found: nothing worth resuming.
      writer->discard();
      return last;
    }
  }
  if (!writer->complete() && !last.ok()) {
    return spent(last.error().wrap("giving up after " + std::to_string(options_.max_attempts) +
                                   " attempts (partial data kept for a resume)"));
  }
  return writer->commit();
}

}  // namespace moat::image
