#include "server/e2b/guest_users.h"

#include <charconv>
#include <vector>

namespace moat::server::e2b {
namespace {

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (out.size() < 8) {
    std::size_t colon = line.find(':', start);
    out.push_back(line.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return out;
}

std::optional<std::uint32_t> id_of(std::string_view text) {
  std::uint32_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

template <class F>
void each_line(std::string_view text, std::size_t max, F&& f) {
  std::size_t n = 0;
  while (!text.empty() && n < max) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    ++n;
    f(line);
  }
}

}  // namespace

GuestUsers GuestUsers::parse(std::string_view passwd, std::string_view group) {
  GuestUsers u;
  each_line(passwd, kMaxEntries, [&](std::string_view line) {
    auto f = fields_of(line);  // name:x:uid:gid:gecos:home:shell
    if (f.size() < 6 || f[0].empty()) return;
    auto uid = id_of(f[2]);
    auto gid = id_of(f[3]);
    if (!uid || !gid) return;
    std::string_view home = f[5];
    if (home.empty() || home.front() != '/') home = "/";
    GuestUser user{std::string(f[0]), *uid, *gid, std::string(home)};
    u.uid_names_.emplace(*uid, user.name);
    u.users_.emplace(user.name, std::move(user));
  });
  each_line(group, kMaxEntries, [&](std::string_view line) {
    auto f = fields_of(line);  // name:x:gid:members
    if (f.size() < 3 || f[0].empty()) return;
    if (auto gid = id_of(f[2])) u.gid_names_.emplace(*gid, std::string(f[0]));
  });
  return u;
}

std::optional<GuestUser> GuestUsers::by_name(const std::string& name) const {
  auto it = users_.find(name);
  if (it == users_.end()) {
    // root is there even in an image without /etc/passwd.
    if (name == "root") return GuestUser{"root", 0, 0, "/root"};
    return std::nullopt;
  }
  return it->second;
}

std::string GuestUsers::user_name(std::uint32_t uid) const {
  auto it = uid_names_.find(uid);
  return it == uid_names_.end() ? std::to_string(uid) : it->second;
}

std::string GuestUsers::group_name(std::uint32_t gid) const {
  auto it = gid_names_.find(gid);
  return it == gid_names_.end() ? std::to_string(gid) : it->second;
}

std::string resolve_guest_path(const std::string& path, const std::string& home) {
  if (!path.empty() && path.front() == '/') return path;
  std::string base = home.empty() ? "/" : home;
  if (path.empty() || path == "~") return base;
  std::string rest = path.rfind("~/", 0) == 0 ? path.substr(2) : path;
  if (base.back() != '/') base += '/';
  return base + rest;
}

}  // namespace moat::server::e2b
