// IP addresses, prefixes and the address groups network policy speaks of
// (@loopback, @private, @link-local, @metadata, @multicast, @public).
//
// Every address a guest names is classified by where it really leads:
// an IPv6 address that carries an IPv4 one to the IPv4 internet
// (::ffff:a.b.c.d mapped, 64:ff9b::/96 NAT64, 2002::/16 6to4, ::a.b.c.d
// compatible) is classified as that IPv4 address too, so ::ffff:127.0.0.1
// is loopback and no rule written for IPv4 can be side-stepped through IPv6.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::net {

struct IpAddress {
  enum class Family : std::uint8_t { kV4, kV6 };
  Family family = Family::kV4;
  std::array<std::uint8_t, 16> bytes{};  // IPv4: the first 4

  // Dotted IPv4 or textual IPv6 without brackets; nothing else (no zone,
  // no leading zeros that inet_pton would refuse).
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d);

  bool is_v4() const { return family == Family::kV4; }
  std::size_t size() const { return is_v4() ? 4 : 16; }
  // "10.0.0.1", "::1" (canonical, as inet_ntop writes it).
  std::string to_string() const;
  // The IPv4 address an IPv6 one leads to (see the header comment).
  std::optional<IpAddress> embedded_v4() const;

  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    return a.family == b.family && a.bytes == b.bytes;
  }
};

// An address prefix ("10.0.0.0/8", "fd00::/8"). Bits past the prefix are
// ignored when matching and must be zero when parsed.
struct IpPrefix {
  IpAddress base;
  unsigned length = 0;

  // "ADDR/LEN" (IPv6 without brackets); an address alone is a full-length
  // prefix. On failure, `why` (if given) says what is wrong.
  static std::optional<IpPrefix> parse(std::string_view text, std::string* why = nullptr);
  bool contains(const IpAddress& a) const;
  std::string to_string() const;
};

// Bits of what an address is; several may hold (169.254.169.254 is
// link-local and metadata). An address with none of them is public.
enum AddressGroup : std::uint32_t {
  kGroupLoopback = 1u << 0,   // 127/8, ::1
  kGroupPrivate = 1u << 1,    // 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7, fec0::/10
  kGroupLinkLocal = 1u << 2,  // 169.254/16, fe80::/10
  kGroupMetadata = 1u << 3,   // cloud instance metadata services
  kGroupMulticast = 1u << 4,  // 224/4, ff00::/8, 255.255.255.255
  // Not routable on the internet and in no group a rule can name: "this
  // network", documentation, benchmarking, reserved and unspecified ranges.
  kGroupReserved = 1u << 5,
};

// The groups of `a`, and of the IPv4 address it embeds, if any.
std::uint32_t address_groups(const IpAddress& a);
inline bool is_public(const IpAddress& a) { return address_groups(a) == 0; }

}  // namespace moat::net
