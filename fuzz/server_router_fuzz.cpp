// The request line of `moat serve`, as any client may send it: the bytes up
// to the first space are the method, the rest the target. The target is
// split and decoded as the server's read_target() does (http_server.cpp:
// percent-decoded path, which must start with "/", and query), then matched
// against the server's route table. Checked: decoding never lets a NUL
// through and undoes encoding exactly; a match is the first route of the
// table whose pattern and method fit, its {names} fill the pattern back to
// the path, and a 405 (path known) is said exactly when some pattern fits.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "server/router.h"

namespace {

using moat::server::Route;
using moat::server::Router;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

// As `moat serve --routes` prints them (src/server/*_routes.cpp), in the
// order they are added: the order decides between patterns that both fit
// ("/v1/images/pull" before "/v1/images/{ref*}"). tests/server/test_openapi.py
// checks this copy against the server's table.
constexpr const char* kRoutes[][2] = {
    {"GET", "/v1/health"},
    {"GET", "/v1/version"},
    {"GET", "/v1/events"},
    {"GET", "/metrics"},
    {"GET", "/v1/sandboxes"},
    {"POST", "/v1/sandboxes"},
    {"GET", "/v1/sandboxes/{id}"},
    {"DELETE", "/v1/sandboxes/{id}"},
    {"POST", "/v1/sandboxes/{id}/start"},
    {"POST", "/v1/sandboxes/{id}/stop"},
    {"POST", "/v1/sandboxes/{id}/restart"},
    {"POST", "/v1/sandboxes/{id}/pause"},
    {"POST", "/v1/sandboxes/{id}/resume"},
    {"PUT", "/v1/sandboxes/{id}/network"},
    {"GET", "/v1/sandboxes/{id}/stats"},
    {"GET", "/v1/sandboxes/{id}/logs"},
    {"GET", "/v1/sandboxes/{id}/history"},
    {"POST", "/v1/sandboxes/{id}/exec"},
    {"GET", "/v1/sandboxes/{id}/execs/{exec}"},
    {"DELETE", "/v1/sandboxes/{id}/execs/{exec}"},
    {"GET", "/v1/sandboxes/{id}/execs/{exec}/attach"},
    {"GET", "/v1/sandboxes/{id}/files/{path*}"},
    {"PUT", "/v1/sandboxes/{id}/files/{path*}"},
    {"DELETE", "/v1/sandboxes/{id}/files/{path*}"},
    {"GET", "/v1/sandboxes/{id}/stat/{path*}"},
    {"GET", "/v1/sandboxes/{id}/dirs/{path*}"},
    {"POST", "/v1/sandboxes/{id}/dirs/{path*}"},
    {"GET", "/v1/sandboxes/{id}/archive/{path*}"},
    {"PUT", "/v1/sandboxes/{id}/archive/{path*}"},
    {"GET", "/v1/images"},
    {"POST", "/v1/images/pull"},
    {"GET", "/v1/images/{ref*}"},
    {"DELETE", "/v1/images/{ref*}"},
    {"GET", "/v1/volumes"},
    {"POST", "/v1/volumes"},
    {"GET", "/v1/volumes/{name}"},
    {"DELETE", "/v1/volumes/{name}"},
    {"GET", "/v1/snapshots"},
    {"POST", "/v1/snapshots"},
    {"GET", "/v1/snapshots/{name}"},
    {"DELETE", "/v1/snapshots/{name}"},
    {"POST", "/v1/sandboxes/{id}/fork"},
    {"GET", "/v1/sandboxes/{id}/changes"},
    {"GET", "/v1/sandboxes/{id}/export"},
    {"POST", "/v1/sandboxes/{id}/commit"},
};
constexpr std::size_t kRouteCount = sizeof kRoutes / sizeof kRoutes[0];

Route route_of(std::size_t i) {
  return Route{kRoutes[i][0], kRoutes[i][1], Route::Body::kNone, false, nullptr};
}

// The whole table, and each route alone (to ask whether its pattern fits).
struct Tables {
  Router all;
  std::vector<Router> single;
  Tables() : single(kRouteCount) {
    for (std::size_t i = 0; i < kRouteCount; ++i) {
      all.add(route_of(i));
      single[i].add(route_of(i));
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

bool pattern_fits(std::size_t i, const std::string& path) {
  std::map<std::string, std::string> params;
  bool known = false;
  tables().single[i].match(kRoutes[i][0], path, params, known);
  return known;
}

// The pattern with its {names} replaced by `params`: the path again.
std::string fill(std::string_view pattern, const std::map<std::string, std::string>& params, bool& ok) {
  std::string out;
  std::size_t used = 0;
  std::size_t start = 1;
  while (start <= pattern.size()) {
    std::size_t end = pattern.find('/', start);
    if (end == std::string_view::npos) end = pattern.size();
    std::string_view seg = pattern.substr(start, end - start);
    start = end + 1;
    if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}') {
      bool rest = seg[seg.size() - 2] == '*';
      auto it = params.find(std::string(seg.substr(1, seg.size() - (rest ? 3 : 2))));
      if (it == params.end()) {
        ok = false;
        return out;
      }
      ++used;
      if (rest) {
        // The rest of the path keeps its leading slash.
        ok = ok && !it->second.empty() && it->second[0] == '/';
        out += it->second;
      } else {
        ok = ok && !it->second.empty() && it->second.find('/') == std::string::npos;
        out += "/" + it->second;
      }
    } else {
      out += "/" + std::string(seg);
    }
  }
  ok = ok && used == params.size();
  return out;
}

void check_decoding(std::string_view text, bool plus_is_space) {
  auto decoded = moat::server::percent_decode(text, plus_is_space);
  if (!decoded) return;
  require(decoded->find('\0') == std::string::npos);
  require(decoded->size() <= text.size());
  // Every byte escaped decodes back to the same bytes.
  std::string encoded;
  for (unsigned char c : *decoded) {
    encoded += '%';
    encoded += "0123456789ABCDEF"[c >> 4];
    encoded += "0123456789abcdef"[c & 15];
  }
  auto again = moat::server::percent_decode(encoded, plus_is_space);
  require(again && *again == *decoded);
  // Text without escapes (or pluses, when they mean spaces) is itself.
  if (text.find('%') == std::string_view::npos && (!plus_is_space || text.find('+') == std::string_view::npos))
    require(*decoded == text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  check_decoding(input, false);
  check_decoding(input, true);

  std::size_t space = input.find(' ');
  if (space == std::string_view::npos) return 0;
  std::string method(input.substr(0, space));
  std::string_view target = input.substr(space + 1);

  // The server's own split: the path before the first "?", decoded, absolute.
  moat::server::Request req;
  req.target = std::string(target);
  if (moat::server::split_target(req)) return 0;
  require(!req.path.empty() && req.path[0] == '/' && req.path.find('\0') == std::string::npos);
  for (const auto& [name, value] : req.query)
    require(name.find('\0') == std::string::npos && value.find('\0') == std::string::npos);
  const std::string* path = &req.path;

  std::map<std::string, std::string> params;
  bool path_known = false;
  const Route* route = tables().all.match(method, *path, params, path_known);

  std::size_t first = kRouteCount;
  bool any_fits = false;
  for (std::size_t i = 0; i < kRouteCount; ++i) {
    if (!pattern_fits(i, *path)) continue;
    any_fits = true;
    if (first == kRouteCount && method == kRoutes[i][0]) first = i;
  }
  require(path_known == any_fits);
  if (first == kRouteCount) {
    require(route == nullptr);
    return 0;
  }
  require(route == &tables().all.routes()[first]);
  bool ok = true;
  require(fill(route->pattern, params, ok) == *path && ok);
  for (const auto& [name, value] : params) require(value.find('\0') == std::string::npos);
  return 0;
}
