// HttpClient: one libcurl easy handle doing one request at a time, with the
// bounds a client of hostile servers needs. Redirects are NOT followed here:
// the registry client follows them itself so that it can decide, per hop,
// whether the Authorization header may go along.
//
// Errors: a transport failure (connection refused or reset, timeout, stall,
// body cut short) is an Error with code EAGAIN, so callers can tell "try
// again" from a definitive answer; an HTTP status, whatever it is, is a
// successful HttpResponse.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.h"

namespace moat::image {

inline constexpr std::size_t kMaxErrorBody = 64 << 10;
inline constexpr std::size_t kMaxHeaderBytes = 256 << 10;

struct HttpHeaders {
  std::vector<std::pair<std::string, std::string>> fields;  // names lowercased
  // The first value of `name` (lowercase), or "".
  std::string get(std::string_view name) const;
  std::vector<std::string> get_all(std::string_view name) const;
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::uint64_t range_start = 0;     // > 0: "Range: bytes=N-"
  // Decides, once the status and headers are in, where the body goes: true
  // streams it into on_body, false collects up to kMaxErrorBody bytes into
  // HttpResponse::body (for error messages). Unset: everything goes into
  // HttpResponse::body, up to max_body bytes, and more is an error.
  std::function<bool(long status, const HttpHeaders&)> want_body;
  std::function<Status(const char* data, std::size_t len)> on_body;
  std::size_t max_body = 4 << 20;
  long connect_timeout_s = 30;
  // A transfer slower than 1 byte/s for this long is abandoned (EAGAIN).
  long stall_timeout_s = 60;
};

struct HttpResponse {
  long status = 0;
  HttpHeaders headers;
  std::string body;
};

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  Result<HttpResponse> perform(const HttpRequest& request);

 private:
  void* curl_ = nullptr;  // CURL*
};

// Resolves `location` (absolute or relative) against `base`.
Result<std::string> resolve_url(const std::string& base, const std::string& location);
// "scheme://host:port" with the default port filled in; "" if unparsable.
std::string url_origin(const std::string& url);
std::string url_scheme(const std::string& url);
// Percent-encodes a query parameter value.
std::string url_escape(std::string_view value);

}  // namespace moat::image
