#include "server/route_support.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "server/api_error.h"

namespace moat::server {

Result<bool> query_flag(const Request& req, const std::string& name, bool fallback) {
  const std::string* v = req.query_value(name);
  if (!v) return fallback;
  if (*v == "true" || *v == "1" || v->empty()) return true;
  if (*v == "false" || *v == "0") return false;
  return make_error("query " + name + ": expected true or false, not \"" + *v + "\"", EINVAL);
}

Result<Duration> query_seconds(const Request& req, const std::string& name, Duration fallback) {
  const std::string* v = req.query_value(name);
  if (!v) return fallback;
  char* end = nullptr;
  errno = 0;
  double s = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno != 0 || !(s >= 0) || s > 86400)
    return make_error("query " + name + ": expected seconds from 0 to 86400, not \"" + *v + "\"", EINVAL);
  return Duration(static_cast<std::int64_t>(s * 1000 + 0.5));
}

Result<std::uint64_t> query_number(const Request& req, const std::string& name, std::uint64_t fallback,
                                   std::uint64_t max) {
  const std::string* v = req.query_value(name);
  if (!v) return fallback;
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || (*v)[0] == '-' || n > max)
    return make_error("query " + name + ": expected a whole number from 0 to " + std::to_string(max), EINVAL);
  return static_cast<std::uint64_t>(n);
}

Result<SandboxInfo> sandbox_of(const Request& req) {
  auto it = req.params.find("id");
  if (it == req.params.end()) return make_error("no sandbox in the path", EINVAL);
  return inspect_sandbox(it->second);
}

bool write_all_fd(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool wants_event_stream(const Request& req) {
  return req.header("accept").find("text/event-stream") != std::string::npos;
}

std::string stream_content_type(const Request& req) {
  return wants_event_stream(req) ? "text/event-stream" : "application/x-ndjson";
}

std::string stream_record(bool event_stream, const std::string& json) {
  return event_stream ? "data: " + json + "\n\n" : json + "\n";
}

Response json_ok(std::string body) { return json_response(200, std::move(body)); }

Response no_content() {
  Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

}  // namespace moat::server
