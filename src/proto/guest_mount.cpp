#include "proto/guest_mount.h"

#include <cerrno>
#include <vector>

namespace moat::proto {
namespace {

constexpr std::size_t kMaxPath = 4096;

std::string to_hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool from_hex(std::string_view hex, std::string& out) {
  if (hex.size() % 2 != 0) return false;
  out.clear();
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi * 16 + lo);
  }
  return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    auto at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) break;
    start = at + 1;
  }
  return parts;
}

bool valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > kMaxVirtiofsTag) return false;
  for (char c : tag) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool parse_size(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    std::uint64_t next = v * 10 + static_cast<std::uint64_t>(c - '0');
    if (next / 10 != v) return false;
    v = next;
  }
  out = v;
  return true;
}

}  // namespace

std::string encode_guest_mount(const GuestMount& m) {
  std::string kind = m.kind == GuestMount::Kind::kTmpfs ? "tmpfs" : "virtiofs";
  return kind + "," + m.tag + "," + to_hex(m.path) + "," + (m.read_only ? "ro" : "rw") + "," +
         std::to_string(m.size_bytes);
}

Result<GuestMount> decode_guest_mount(std::string_view value) {
  auto bad = [&](const std::string& why) {
    return make_error("moat.mount=" + std::string(value.substr(0, 200)) + ": " + why, EINVAL);
  };
  auto f = split(value, ',');
  if (f.size() != 5) return bad("expected 5 comma-separated fields");
  GuestMount m;
  if (f[0] == "virtiofs") {
    m.kind = GuestMount::Kind::kVirtiofs;
    if (!valid_tag(f[1])) return bad("bad virtio-fs tag");
    m.tag = std::string(f[1]);
  } else if (f[0] == "tmpfs") {
    m.kind = GuestMount::Kind::kTmpfs;
    if (!f[1].empty()) return bad("a tmpfs has no tag");
  } else {
    return bad("unknown kind");
  }
  if (f[2].size() > 2 * kMaxPath || !from_hex(f[2], m.path)) return bad("bad path encoding");
  if (m.path.empty() || m.path[0] != '/' || m.path.find('\0') != std::string::npos) return bad("the path is not absolute");
  if (f[3] == "ro") m.read_only = true;
  else if (f[3] != "rw") return bad("expected ro or rw");
  if (!parse_size(f[4], m.size_bytes)) return bad("bad size");
  return m;
}

}  // namespace moat::proto
