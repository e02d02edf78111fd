#include "server/route_support.h"

#include <poll.h>
#include <unistd.h>

#include <atomic>
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

namespace {

// Plain decimal digits only: strtod and strtoull also take leading spaces,
// signs ("-1" wraps to 2^64-1), hex, exponents and "inf".
bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

// "S" or "S.F": seconds with an optional fraction, to the millisecond.
Result<Duration> query_seconds(const Request& req, const std::string& name, Duration fallback) {
  const std::string* v = req.query_value(name);
  if (!v) return fallback;
  std::string_view text = *v;
  std::size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  bool ok = all_digits(whole) && whole.size() <= 5 && (dot == std::string_view::npos || all_digits(fraction));
  std::int64_t ms = 0;
  if (ok) {
    for (char c : whole) ms = ms * 10 + (c - '0');
    ms *= 1000;
    // Milliseconds from the first three fraction digits, rounded by the fourth.
    std::int64_t scale = 100;
    for (std::size_t i = 0; i < fraction.size() && i < 3; ++i, scale /= 10) ms += (fraction[i] - '0') * scale;
    if (fraction.size() > 3 && fraction[3] >= '5') ++ms;
    ok = ms <= 86400 * 1000;
  }
  if (!ok) return make_error("query " + name + ": expected seconds from 0 to 86400, not \"" + *v + "\"", EINVAL);
  return Duration(ms);
}

Result<std::uint64_t> query_number(const Request& req, const std::string& name, std::uint64_t fallback,
                                   std::uint64_t max) {
  const std::string* v = req.query_value(name);
  if (!v) return fallback;
  std::uint64_t n = 0;
  bool ok = all_digits(*v);
  for (std::size_t i = 0; ok && i < v->size(); ++i) {
    std::uint64_t digit = static_cast<std::uint64_t>((*v)[i] - '0');
    ok = digit <= max && n <= (max - digit) / 10;
    n = n * 10 + digit;
  }
  if (!ok) return make_error("query " + name + ": expected a whole number from 0 to " + std::to_string(max), EINVAL);
  return n;
}

Result<SandboxInfo> sandbox_of(const Request& req) {
  auto it = req.params.find("id");
  if (it == req.params.end()) return make_error("no sandbox in the path", EINVAL);
  return inspect_sandbox(it->second);
}

bool reader_gone(int fd) {
  pollfd p{fd, 0, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP)) != 0;
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

std::string upload_temp_path(const std::string& path) {
  std::size_t slash = path.rfind('/');
  static std::atomic<std::uint64_t> counter{0};
  return path.substr(0, slash + 1) + ".moat-upload-" + std::to_string(::getpid()) + "-" +
         std::to_string(++counter) + "-" + path.substr(slash + 1, 64);
}

Status finish_upload(Sandbox& sb, const std::string& temp, const std::string& path, Status wrote) {
  if (wrote) wrote = sb.rename(temp, path);
  if (!wrote) (void)sb.remove(temp);
  return wrote;
}

}  // namespace moat::server
