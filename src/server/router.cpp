#include "server/router.h"

#include <string_view>

#include "util/hex.h"

namespace moat::server {
namespace {

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// A {name} segment takes any one non-empty segment; "{path*}" as the last
// takes the rest of the path (file paths in the guest), slashes included.
bool match_pattern(std::string_view pattern, std::string_view path, std::map<std::string, std::string>& params) {
  auto p = segments(pattern);
  auto s = segments(path);
  std::map<std::string, std::string> found;
  for (std::size_t i = 0; i < p.size(); ++i) {
    std::string_view seg = p[i];
    bool is_param = seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
    if (is_param && seg[seg.size() - 2] == '*') {
      if (i >= s.size()) return false;
      std::string rest;
      for (std::size_t j = i; j < s.size(); ++j) rest += "/" + std::string(s[j]);
      found[std::string(seg.substr(1, seg.size() - 3))] = rest;
      params = std::move(found);
      return true;
    }
    if (i >= s.size()) return false;
    if (is_param) {
      if (s[i].empty()) return false;
      found[std::string(seg.substr(1, seg.size() - 2))] = std::string(s[i]);
    } else if (seg != s[i]) {
      return false;
    }
  }
  if (p.size() != s.size()) return false;
  params = std::move(found);
  return true;
}

}  // namespace

void Router::add(Route route) { routes_.push_back(std::move(route)); }

const Route* Router::match(const std::string& method, const std::string& path,
                           std::map<std::string, std::string>& params, bool& path_known) const {
  path_known = false;
  for (const Route& r : routes_) {
    std::map<std::string, std::string> found;
    if (!match_pattern(r.pattern, path, found)) continue;
    path_known = true;
    if (r.method != method) continue;
    params = std::move(found);
    return &r;
  }
  return nullptr;
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return std::nullopt;
    out += c;
  }
  return out;
}

std::optional<std::map<std::string, std::string>> parse_query(std::string_view text) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('&', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view pair = text.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    auto name = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!name || !value) return std::nullopt;
    out[*name] = *value;
  }
  return out;
}

std::optional<std::string> split_target(Request& req) {
  std::string_view target = req.target;
  std::size_t q = target.find('?');
  auto path = percent_decode(target.substr(0, q));
  if (!path || path->empty() || (*path)[0] != '/') return std::string("bad request target");
  req.path = std::move(*path);
  if (q != std::string_view::npos) {
    auto query = parse_query(target.substr(q + 1));
    if (!query) return std::string("bad query string");
    req.query = std::move(*query);
  }
  return std::nullopt;
}

}  // namespace moat::server
