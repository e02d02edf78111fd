#include "net/ip_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <vector>

namespace moat::net {
namespace {

struct Range {
  const char* prefix;
  std::uint32_t groups;
};

// Where each special range lies. Looked up by prefix match; one address can
// hit several entries (their groups add up).
constexpr Range kV4Ranges[] = {
    {"0.0.0.0/8", kGroupReserved},          {"10.0.0.0/8", kGroupPrivate},
    {"100.64.0.0/10", kGroupPrivate},       {"100.100.100.200/32", kGroupMetadata},
    {"127.0.0.0/8", kGroupLoopback},        {"169.254.0.0/16", kGroupLinkLocal},
    {"169.254.169.254/32", kGroupMetadata}, {"169.254.170.2/32", kGroupMetadata},
    {"172.16.0.0/12", kGroupPrivate},       {"192.0.0.0/24", kGroupReserved},
    {"192.0.2.0/24", kGroupReserved},       {"192.168.0.0/16", kGroupPrivate},
    {"198.18.0.0/15", kGroupReserved},      {"198.51.100.0/24", kGroupReserved},
    {"203.0.113.0/24", kGroupReserved},     {"224.0.0.0/4", kGroupMulticast},
    {"240.0.0.0/4", kGroupReserved},        {"255.255.255.255/32", kGroupMulticast},
};

constexpr Range kV6Ranges[] = {
    {"::/128", kGroupReserved},        {"::1/128", kGroupLoopback},   {"100::/64", kGroupReserved},
    {"2001:db8::/32", kGroupReserved}, {"fc00::/7", kGroupPrivate},   {"fd00:ec2::254/128", kGroupMetadata},
    {"fe80::/10", kGroupLinkLocal},    {"fec0::/10", kGroupPrivate},  {"ff00::/8", kGroupMulticast},
};

bool has_prefix(const IpAddress& a, std::initializer_list<std::uint8_t> head) {
  return std::equal(head.begin(), head.end(), a.bytes.begin());
}

struct ParsedRange {
  IpPrefix prefix;
  std::uint32_t groups;
};

// The tables above, parsed once.
const std::vector<ParsedRange>& special_ranges() {
  static const std::vector<ParsedRange> ranges = [] {
    std::vector<ParsedRange> out;
    auto add = [&](const auto& table) {
      for (const Range& r : table) out.push_back({*IpPrefix::parse(r.prefix), r.groups});
    };
    add(kV4Ranges);
    add(kV6Ranges);
    return out;
  }();
  return ranges;
}

std::uint32_t groups_in(const IpAddress& a) {
  std::uint32_t groups = 0;
  for (const auto& r : special_ranges())
    if (r.prefix.contains(a)) groups |= r.groups;
  return groups;
}

std::optional<unsigned> parse_length(std::string_view text, unsigned max) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || v > max) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  return v;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  std::string s(text);
  IpAddress a;
  if (s.find(':') == std::string::npos) {
    if (::inet_pton(AF_INET, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
    a.family = Family::kV4;
    return a;
  }
  if (::inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  a.family = Family::kV6;
  return a;
}

IpAddress IpAddress::v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  IpAddress ip;
  ip.bytes[0] = a;
  ip.bytes[1] = b;
  ip.bytes[2] = c;
  ip.bytes[3] = d;
  return ip;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

std::optional<IpAddress> IpAddress::embedded_v4() const {
  if (is_v4()) return std::nullopt;
  auto tail = [&](std::size_t at) { return v4(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]); };
  // ::ffff:a.b.c.d (mapped) and 64:ff9b::a.b.c.d (NAT64, RFC 6052).
  if (has_prefix(*this, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})) return tail(12);
  if (has_prefix(*this, {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0})) return tail(12);
  // 2002:AABB:CCDD::/48 (6to4) carries a.b.c.d in bits 16-47.
  if (has_prefix(*this, {0x20, 0x02})) return tail(2);
  // ::a.b.c.d (deprecated "compatible"), but not :: and ::1 themselves.
  if (has_prefix(*this, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) &&
      !(bytes[12] == 0 && bytes[13] == 0 && bytes[14] == 0 && bytes[15] <= 1))
    return tail(12);
  return std::nullopt;
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<IpPrefix> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  std::size_t slash = text.find('/');
  auto base = IpAddress::parse(text.substr(0, slash));
  if (!base) return fail("\"" + std::string(text.substr(0, slash)) + "\" is not an IP address");
  IpPrefix p;
  p.base = *base;
  unsigned max = base->is_v4() ? 32 : 128;
  p.length = max;
  if (slash != std::string_view::npos) {
    auto len = parse_length(text.substr(slash + 1), max);
    if (!len) return fail("prefix length \"" + std::string(text.substr(slash + 1)) + "\" is not 0 to " +
                          std::to_string(max));
    p.length = *len;
  }
  for (unsigned bit = p.length; bit < max; ++bit) {
    if (p.base.bytes[bit / 8] & (0x80u >> (bit % 8)))
      return fail(std::string(text) + " has bits set past its prefix length");
  }
  return p;
}

bool IpPrefix::contains(const IpAddress& a) const {
  if (a.family != base.family) return false;
  unsigned full = length / 8;
  if (std::memcmp(a.bytes.data(), base.bytes.data(), full) != 0) return false;
  unsigned rest = length % 8;
  if (rest == 0) return true;
  std::uint8_t mask = static_cast<std::uint8_t>(0xff00u >> rest);
  return (a.bytes[full] & mask) == (base.bytes[full] & mask);
}

std::string IpPrefix::to_string() const { return base.to_string() + "/" + std::to_string(length); }

std::uint32_t address_groups(const IpAddress& a) {
  std::uint32_t groups = groups_in(a);
  if (auto v4 = a.embedded_v4()) groups |= groups_in(*v4);
  return groups;
}

}  // namespace moat::net
