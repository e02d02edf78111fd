#include "agent/user_db.h"

#include "agent/small_file.h"

#include <charconv>
#include <optional>

namespace moat::agent {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto pos = s.find(sep, start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

std::optional<std::uint32_t> parse_id(const std::string& s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  std::uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Reads colon-separated records, bounded so a hostile image cannot make the
// agent read forever.
std::vector<std::vector<std::string>> read_records(const std::string& path) {
  std::vector<std::vector<std::string>> records;
  std::string text = read_small_file(path, 16u << 20);
  std::size_t pos = 0, lines = 0;
  while (pos < text.size() && ++lines < 100000) {
    std::size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (line.empty() || line[0] == '#' || line.size() > 4096) continue;
    records.push_back(split(line, ':'));
  }
  return records;
}

}  // namespace

Result<Credentials> resolve_user(const std::string& spec, const std::string& passwd_path,
                                 const std::string& group_path) {
  Credentials c;
  c.name = "root";
  c.home = "/root";
  if (spec.empty()) return c;
  std::string user_part = spec, group_part;
  if (auto colon = spec.find(':'); colon != std::string::npos) {
    user_part = spec.substr(0, colon);
    group_part = spec.substr(colon + 1);
  }
  auto passwd = read_records(passwd_path);
  auto uid = parse_id(user_part);
  bool found = false;
  for (const auto& r : passwd) {
    if (r.size() < 7) continue;
    auto rid = parse_id(r[2]);
    auto rgid = parse_id(r[3]);
    if (!rid || !rgid) continue;
    if ((uid && *rid == *uid) || (!uid && r[0] == user_part)) {
      c.uid = *rid;
      c.gid = *rgid;
      c.name = r[0];
      c.home = r[5].empty() ? "/" : r[5];
      found = true;
      break;
    }
  }
  if (!found) {
    if (!uid) return make_error("unable to find user " + user_part + ": no matching entries in passwd file");
    c.uid = *uid;
    c.gid = *uid == 0 ? 0 : *uid;
    c.name.clear();
    c.home = "/";
  }
  auto groups = read_records(group_path);
  if (!group_part.empty()) {
    auto gid = parse_id(group_part);
    if (gid) {
      c.gid = *gid;
    } else {
      bool gfound = false;
      for (const auto& g : groups) {
        if (g.size() >= 3 && g[0] == group_part) {
          if (auto id = parse_id(g[2])) {
            c.gid = *id;
            gfound = true;
            break;
          }
        }
      }
      if (!gfound) return make_error("unable to find group " + group_part + ": no matching entries in group file");
    }
  }
  c.groups.push_back(c.gid);
  if (!c.name.empty()) {
    for (const auto& g : groups) {
      if (g.size() < 4) continue;
      auto gid = parse_id(g[2]);
      if (!gid || *gid == c.gid) continue;
      for (const auto& member : split(g[3], ','))
        if (member == c.name) c.groups.push_back(*gid);
      if (c.groups.size() >= 64) break;
    }
  }
  return c;
}

}  // namespace moat::agent
