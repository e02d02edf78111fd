#include "agent/listening_ports.h"

#include <cstdint>
#include <optional>

#include "agent/small_file.h"
#include "agent/text_fields.h"
#include "util/hex.h"

namespace moat::agent {
namespace {

// The kernel's state number for LISTEN, as /proc/net/tcp prints it.
constexpr std::string_view kListenState = "0A";
// Enough for ~25,000 sockets; a guest with more has its first ones watched.
constexpr std::size_t kMaxProcNetBytes = 4u << 20;

std::optional<std::uint32_t> hex32(std::string_view s) {
  if (s.empty() || s.size() > 8) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : s) {
    int d = hex_value(c);
    if (d < 0) return std::nullopt;
    v = (v << 4) | static_cast<std::uint32_t>(d);
  }
  return v;
}

// The address as printed: 8 hex digits (IPv4) or 32 (IPv6), each 32-bit
// word in the guest's byte order (little-endian on x86), so the first
// octet of a word is its lowest byte.
bool is_loopback(std::string_view hex) {
  auto word = [&](std::size_t i) { return hex32(hex.substr(i * 8, 8)); };
  if (hex.size() == 8) {
    auto w = word(0);
    return w && (*w & 0xff) == 127;
  }
  if (hex.size() != 32) return false;
  auto w0 = word(0), w1 = word(1), w2 = word(2), w3 = word(3);
  if (!w0 || !w1 || !w2 || !w3 || *w0 != 0 || *w1 != 0) return false;
  if (*w2 == 0 && *w3 == 0x01000000) return true;      // ::1
  return *w2 == 0xffff0000 && (*w3 & 0xff) == 127;     // ::ffff:127.x.y.z
}

// "   0: 00000000:1F90 00000000:0000 0A ..." → 8080, when listening.
std::optional<std::uint16_t> listening_port(std::string_view line) {
  std::size_t at = 0;
  std::string_view slot = next_field(line, at);
  if (slot.empty() || slot.back() != ':') return std::nullopt;
  std::string_view local = next_field(line, at);
  next_field(line, at);  // the remote address
  std::string_view state = next_field(line, at);
  if (state != kListenState) return std::nullopt;
  std::size_t colon = local.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view address = local.substr(0, colon);
  auto port = hex32(local.substr(colon + 1));
  if (!port || *port == 0 || *port > 0xffff || local.size() - colon - 1 != 4) return std::nullopt;
  if ((address.size() != 8 && address.size() != 32) || !hex32(address.substr(0, 8))) return std::nullopt;
  if (is_loopback(address)) return std::nullopt;
  return static_cast<std::uint16_t>(*port);
}

}  // namespace

proto::PortSet parse_listening_ports(std::string_view text) {
  proto::PortSet ports;
  for_each_line(text, [&](std::string_view line) {
    if (auto port = listening_port(line)) ports.insert(*port);
    return true;
  });
  return ports;
}

proto::PortSet read_listening_ports() {
  proto::PortSet ports = parse_listening_ports(read_small_file("/proc/net/tcp", kMaxProcNetBytes));
  ports.merge(parse_listening_ports(read_small_file("/proc/net/tcp6", kMaxProcNetBytes)));
  return ports;
}

}  // namespace moat::agent
