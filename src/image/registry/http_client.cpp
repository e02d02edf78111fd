#include "image/registry/http_client.h"

#include "image/registry/curl_library.h"
#include "util/ascii_case.h"


#include <algorithm>
#include <cctype>
#include <cerrno>
#include <mutex>
#include <optional>

namespace moat::image {
namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return std::string(s);
}

// Signed blob URLs carry temporary credentials in the query; keep them out of
// error messages.
std::string redact(const std::string& url) { return url.substr(0, url.find('?')); }

struct Transfer {
  const HttpRequest* req = nullptr;
  HttpResponse* resp = nullptr;
  const CurlLibrary* lib = nullptr;
  CURL* curl = nullptr;
  bool headers_done = false;
  bool to_sink = false;
  std::size_t header_bytes = 0;
  bool error_body_full = false;  // stopped reading an error body on purpose
  std::optional<Error> failure;  // from the sink or a bound
};

void end_of_headers(Transfer& t) {
  long status = 0;
  t.lib->easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status);
  t.resp->status = status;
  t.headers_done = true;
  t.to_sink = t.req->want_body && t.req->want_body(status, t.resp->headers);
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  size_t len = size * n;
  t.header_bytes += len;
  if (t.header_bytes > kMaxHeaderBytes) {
    t.failure = make_error("response headers larger than " + std::to_string(kMaxHeaderBytes) +
                               " bytes",
                           EFBIG);
    return 0;
  }
  std::string_view line(data, len);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after 100 Continue): forget the previous headers.
    t.resp->headers.fields.clear();
    t.headers_done = false;
    return len;
  }
  if (line == "\r\n" || line == "\n") {
    long status = 0;
    t.lib->easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200) end_of_headers(t);
    return len;
  }
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    t.resp->headers.fields.emplace_back(ascii_lower(trim(line.substr(0, colon))),
                                        trim(line.substr(colon + 1)));
  }
  return len;
}

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  size_t len = size * n;
  if (!t.headers_done) end_of_headers(t);
  if (t.to_sink) {
    if (auto st = t.req->on_body(data, len); !st) {
      t.failure = st.error();
      return 0;
    }
    return len;
  }
  std::string& body = t.resp->body;
  if (!t.req->want_body) {
    if (body.size() + len > t.req->max_body) {
      t.failure = make_error("response body larger than " + std::to_string(t.req->max_body) +
                                 " bytes",
                             EFBIG);
      return 0;
    }
    body.append(data, len);
    return len;
  }
  // An error body: keep the start for the message, stop reading the rest.
  size_t keep = std::min(len, kMaxErrorBody - std::min(kMaxErrorBody, body.size()));
  body.append(data, keep);
  if (body.size() >= kMaxErrorBody) {
    t.error_body_full = true;
    return 0;
  }
  return len;
}

}  // namespace

std::string HttpHeaders::get(std::string_view name) const {
  for (const auto& [k, v] : fields) {
    if (k == name) return v;
  }
  return "";
}

std::vector<std::string> HttpHeaders::get_all(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : fields) {
    if (k == name) out.push_back(v);
  }
  return out;
}

HttpClient::HttpClient() {
  if (auto lib = curl_library()) curl_ = (*lib)->easy_init();  // else perform() reports why
}

HttpClient::~HttpClient() {
  // A handle exists only if the library loaded.
  if (curl_) (*curl_library())->easy_cleanup(static_cast<CURL*>(curl_));
}

Result<HttpResponse> HttpClient::perform(const HttpRequest& req) {
  MOAT_ASSIGN_OR_RETURN(const CurlLibrary* lib, curl_library());
  CURL* c = static_cast<CURL*>(curl_);
  if (!c) return make_error("curl_easy_init failed", ENOMEM);
  lib->easy_reset(c);
  HttpResponse resp;
  Transfer t;
  t.req = &req;
  t.resp = &resp;
  t.lib = lib;
  t.curl = c;

  curl_slist* headers = nullptr;
  for (const auto& h : req.headers) headers = lib->slist_append(headers, h.c_str());
  std::string range;
  if (req.range_start > 0) range = std::to_string(req.range_start) + "-";

  lib->easy_setopt(c, CURLOPT_URL, req.url.c_str());
  lib->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  lib->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  lib->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // safe with threads
  lib->easy_setopt(c, CURLOPT_USERAGENT, "moat/0.1");
  lib->easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  lib->easy_setopt(c, CURLOPT_CONNECTTIMEOUT, req.connect_timeout_s);
  lib->easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  lib->easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req.stall_timeout_s);
  lib->easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  lib->easy_setopt(c, CURLOPT_HEADERDATA, &t);
  lib->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  lib->easy_setopt(c, CURLOPT_WRITEDATA, &t);
  if (!range.empty()) lib->easy_setopt(c, CURLOPT_RANGE, range.c_str());
  if (req.method == "HEAD") {
    lib->easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method != "GET") {
    lib->easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  CURLcode rc = lib->easy_perform(c);
  lib->slist_free_all(headers);
  if (t.failure) return *t.failure;
  if (rc == CURLE_WRITE_ERROR && t.error_body_full) rc = CURLE_OK;
  if (rc != CURLE_OK) {
    return make_error(req.method + " " + redact(req.url) + ": " + lib->easy_strerror(rc), EAGAIN);
  }
  if (!t.headers_done) end_of_headers(t);
  return resp;
}

Result<std::string> resolve_url(const std::string& base, const std::string& location) {
  MOAT_ASSIGN_OR_RETURN(const CurlLibrary* lib, curl_library());
  CURLU* u = lib->url();
  if (!u) return make_error("out of memory", ENOMEM);
  std::string out;
  char* s = nullptr;
  if (lib->url_set(u, CURLUPART_URL, base.c_str(), 0) == CURLUE_OK &&
      lib->url_set(u, CURLUPART_URL, location.c_str(), 0) == CURLUE_OK &&
      lib->url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) {
    out = s;
  }
  lib->free(s);
  lib->url_cleanup(u);
  if (out.empty()) return make_error("invalid redirect location '" + redact(location) + "'", EPROTO);
  return out;
}

namespace {
// "" when the URL does not parse (or libcurl cannot be loaded: the request
// that follows says why).
std::string url_part(const std::string& url, CURLUPart part, unsigned flags = 0) {
  auto lib = curl_library();
  if (!lib) return "";
  CURLU* u = (*lib)->url();
  std::string out;
  char* s = nullptr;
  if (u && (*lib)->url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
      (*lib)->url_get(u, part, &s, flags) == CURLUE_OK) {
    out = s;
  }
  (*lib)->free(s);
  (*lib)->url_cleanup(u);
  return out;
}
}  // namespace

std::string url_scheme(const std::string& url) { return ascii_lower(url_part(url, CURLUPART_SCHEME)); }

std::string url_origin(const std::string& url) {
  std::string scheme = url_scheme(url);
  std::string host = ascii_lower(url_part(url, CURLUPART_HOST));
  std::string port = url_part(url, CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (scheme.empty() || host.empty()) return "";
  return scheme + "://" + host + ":" + port;
}

std::string url_escape(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace moat::image
