#include "net/packet.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <cerrno>
#include <initializer_list>
#include <string>

namespace moat::net {
namespace {

constexpr std::size_t kIpv4Header = 20;
constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kTcpHeader = 20;
constexpr std::size_t kUdpHeader = 8;
// Every ICMP and ICMPv6 message has at least type, code, checksum and four
// bytes that depend on the type.
constexpr std::size_t kIcmpHeader = 8;
constexpr std::size_t kMaxIpPacket = 65535;
// What an ICMPv6 error may quote so that it stays within the IPv6 minimum
// MTU (RFC 4443 2.4 (c)).
constexpr std::size_t kIpv6MinMtu = 1280;

constexpr std::uint16_t kIpv4DontFragment = 0x4000;
constexpr std::uint16_t kIpv4MoreFragments = 0x2000;
constexpr std::uint16_t kIpv4FragmentOffset = 0x1fff;
constexpr std::uint8_t kDefaultTtl = 64;

constexpr std::uint8_t kIpv6HopByHop = 0;
constexpr std::uint8_t kIpv6Routing = 43;
constexpr std::uint8_t kIpv6Fragment = 44;
constexpr std::uint8_t kIpv6DestinationOptions = 60;
constexpr std::size_t kIpv6FragmentHeader = 8;

constexpr std::uint8_t kIcmpDestinationUnreachable = 3;
constexpr std::uint8_t kIcmpPortUnreachable = 3;
constexpr std::uint8_t kIcmpv6DestinationUnreachable = 1;
constexpr std::uint8_t kIcmpv6PortUnreachable = 4;
// RFC 792: the original IP header and the first 64 bits of its data.
constexpr std::size_t kIcmpQuotedData = 8;

Error packet_error(const std::string& why) { return make_error("packet: " + why, EINVAL); }

// Reads at offsets the caller has checked against the span's size.
std::uint16_t get_u16(std::span<const std::uint8_t> p, std::size_t at) {
  return static_cast<std::uint16_t>(p[at] << 8 | p[at + 1]);
}

std::uint32_t get_u32(std::span<const std::uint8_t> p, std::size_t at) {
  return static_cast<std::uint32_t>(get_u16(p, at)) << 16 | get_u16(p, at + 2);
}

IpAddress get_address(std::span<const std::uint8_t> p, std::size_t at, IpAddress::Family family) {
  IpAddress a;
  a.family = family;
  std::copy_n(p.begin() + static_cast<std::ptrdiff_t>(at), a.size(), a.bytes.begin());
  return a;
}

Status parse_tcp(std::span<const std::uint8_t> l4, FrameView& v) {
  if (l4.size() < kTcpHeader) return packet_error("shorter than a TCP header");
  std::size_t header = static_cast<std::size_t>(l4[12] >> 4) * 4;
  if (header < kTcpHeader) return packet_error("TCP data offset below 5");
  if (header > l4.size()) return packet_error("TCP data offset past the packet");
  v.l4 = L4::kTcp;
  v.src_port = get_u16(l4, 0);
  v.dst_port = get_u16(l4, 2);
  v.seq = get_u32(l4, 4);
  v.ack = get_u32(l4, 8);
  v.tcp_flags = l4[13];
  v.window = get_u16(l4, 14);
  v.payload = l4.subspan(header);
  return ok_status();
}

Status parse_udp(std::span<const std::uint8_t> l4, FrameView& v) {
  if (l4.size() < kUdpHeader) return packet_error("shorter than a UDP header");
  std::size_t length = get_u16(l4, 4);
  if (length < kUdpHeader) return packet_error("UDP length below 8");
  // The first fragment of a datagram holds only the start of what the
  // length counts; its payload is the part it holds.
  if (length > l4.size() && !v.fragment) return packet_error("UDP length past the packet");
  v.l4 = L4::kUdp;
  v.src_port = get_u16(l4, 0);
  v.dst_port = get_u16(l4, 2);
  v.payload = l4.subspan(kUdpHeader, std::min(length, l4.size()) - kUdpHeader);
  return ok_status();
}

Status parse_icmp(std::span<const std::uint8_t> l4, L4 kind, FrameView& v) {
  if (l4.size() < kIcmpHeader) return packet_error("shorter than an ICMP header");
  v.l4 = kind;
  v.icmp_type = l4[0];
  v.icmp_code = l4[1];
  return ok_status();
}

// The upper-layer header at the start of `l4`, the rest of the IP packet.
// ICMP is taken only over IPv4 and ICMPv6 only over IPv6; either over the
// other is just another protocol.
Status parse_l4(std::span<const std::uint8_t> l4, FrameView& v) {
  v.l4_packet = l4;
  switch (v.ip_protocol) {
    case kIpProtoTcp: return parse_tcp(l4, v);
    case kIpProtoUdp: return parse_udp(l4, v);
    case kIpProtoIcmp:
      if (v.l3 == L3::kIpv4) return parse_icmp(l4, L4::kIcmp, v);
      break;
    case kIpProtoIcmpv6:
      if (v.l3 == L3::kIpv6) return parse_icmp(l4, L4::kIcmpv6, v);
      break;
    default: break;
  }
  v.l4 = L4::kOther;
  return ok_status();
}

Status parse_ipv4(std::span<const std::uint8_t> ip, FrameView& v) {
  if (ip.size() < kIpv4Header) return packet_error("shorter than an IPv4 header");
  if (ip[0] >> 4 != 4) return packet_error("IPv4 version is not 4");
  std::size_t header = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
  if (header < kIpv4Header) return packet_error("IPv4 header length below 5");
  std::size_t total = get_u16(ip, 2);
  if (total < header) return packet_error("IPv4 total length shorter than its header");
  // What follows the total length is Ethernet's padding to 60 bytes.
  if (total > ip.size()) return packet_error("IPv4 total length past the frame");
  v.l3 = L3::kIpv4;
  v.ip_packet = ip.first(total);
  v.ip_protocol = ip[9];
  v.src = get_address(ip, 12, IpAddress::Family::kV4);
  v.dst = get_address(ip, 16, IpAddress::Family::kV4);
  std::uint16_t fragment = get_u16(ip, 6);
  v.fragment = (fragment & kIpv4MoreFragments) || (fragment & kIpv4FragmentOffset) != 0;
  // Past the first fragment there is no upper-layer header to read.
  if ((fragment & kIpv4FragmentOffset) != 0) return ok_status();
  return parse_l4(v.ip_packet.subspan(header), v);
}

bool is_ipv6_extension(std::uint8_t next) {
  return next == kIpv6HopByHop || next == kIpv6Routing || next == kIpv6Fragment || next == kIpv6DestinationOptions;
}

Status parse_ipv6(std::span<const std::uint8_t> ip, FrameView& v) {
  if (ip.size() < kIpv6Header) return packet_error("shorter than an IPv6 header");
  if (ip[0] >> 4 != 6) return packet_error("IPv6 version is not 6");
  std::size_t total = kIpv6Header + get_u16(ip, 4);
  if (total > ip.size()) return packet_error("IPv6 payload length past the frame");
  v.l3 = L3::kIpv6;
  v.ip_packet = ip.first(total);
  v.src = get_address(ip, 8, IpAddress::Family::kV6);
  v.dst = get_address(ip, 24, IpAddress::Family::kV6);

  auto packet = v.ip_packet;
  std::uint8_t next = ip[6];
  std::size_t at = kIpv6Header;
  for (std::size_t count = 0; is_ipv6_extension(next); ++count) {
    if (count == kMaxIpv6ExtensionHeaders)
      return packet_error("more than " + std::to_string(kMaxIpv6ExtensionHeaders) + " IPv6 extension headers");
    // RFC 8200 4.3: hop-by-hop options come first or not at all. Stacks
    // differ on one found later; the filter and the stack behind it must
    // not see different packets.
    if (next == kIpv6HopByHop && count != 0) return packet_error("IPv6 hop-by-hop options not first");
    // Every extension header is a multiple of 8 bytes, at least 8.
    if (packet.size() - at < 8) return packet_error("IPv6 extension header past the packet");
    std::size_t length =
        next == kIpv6Fragment ? kIpv6FragmentHeader : (static_cast<std::size_t>(packet[at + 1]) + 1) * 8;
    if (length > packet.size() - at) return packet_error("IPv6 extension header past the packet");
    std::uint8_t following = packet[at];
    if (next == kIpv6Fragment) {
      v.fragment = true;
      // Past the first fragment, the rest is not headers.
      if ((get_u16(packet, at + 2) >> 3) != 0) {
        v.ip_protocol = following;
        return ok_status();
      }
    }
    at += length;
    next = following;
  }
  v.ip_protocol = next;
  return parse_l4(packet.subspan(at), v);
}

void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  put_u16(out, static_cast<std::uint16_t>(v >> 16));
  put_u16(out, static_cast<std::uint16_t>(v));
}

void set_u16(std::vector<std::uint8_t>& out, std::size_t at, std::uint16_t v) {
  out[at] = static_cast<std::uint8_t>(v >> 8);
  out[at + 1] = static_cast<std::uint8_t>(v);
}

void put_address(std::vector<std::uint8_t>& out, const IpAddress& a) {
  out.insert(out.end(), a.bytes.begin(), a.bytes.begin() + static_cast<std::ptrdiff_t>(a.size()));
}

// Whether an upper-layer message of `l4_bytes` can go from `src` to `dst`
// in one IP packet: one family, and a length its header can carry.
bool fits(const IpAddress& src, const IpAddress& dst, std::size_t l4_bytes) {
  if (src.family != dst.family) return false;
  return l4_bytes <= kMaxIpPacket - (src.is_v4() ? kIpv4Header : 0);
}

// The unfolded sum of the pseudo-header upper-layer checksums cover
// (RFC 9293 3.1 for IPv4, RFC 8200 8.1 for IPv6).
std::uint32_t pseudo_header_sum(const IpAddress& src, const IpAddress& dst, std::uint8_t protocol,
                                std::size_t l4_bytes) {
  std::uint32_t sum = 0;
  for (const IpAddress* a : {&src, &dst})
    for (std::size_t i = 0; i < a->size(); i += 2)
      sum += static_cast<std::uint32_t>(a->bytes[i] << 8 | a->bytes[i + 1]);
  sum += protocol;
  // IPv4 counts the length in 16 bits, IPv6 in 32; it is below 65536 here.
  sum += static_cast<std::uint32_t>(l4_bytes >> 16) + static_cast<std::uint32_t>(l4_bytes & 0xffff);
  return sum;
}

// The Ethernet and IP headers of a frame carrying `l4_bytes` of `protocol`.
std::vector<std::uint8_t> frame_head(const MacAddress& src_mac, const MacAddress& dst_mac, const IpAddress& src,
                                     const IpAddress& dst, std::uint8_t protocol, std::size_t l4_bytes) {
  std::vector<std::uint8_t> out;
  out.reserve(kEthernetHeader + kIpv6Header + l4_bytes);
  out.insert(out.end(), dst_mac.bytes.begin(), dst_mac.bytes.end());
  out.insert(out.end(), src_mac.bytes.begin(), src_mac.bytes.end());
  if (src.is_v4()) {
    put_u16(out, kEtherTypeIpv4);
    out.push_back(0x45);  // version 4, five words of header
    out.push_back(0);     // TOS
    put_u16(out, static_cast<std::uint16_t>(kIpv4Header + l4_bytes));
    put_u16(out, 0);  // id: with DF set there are no fragments to match (RFC 6864)
    put_u16(out, kIpv4DontFragment);
    out.push_back(kDefaultTtl);
    out.push_back(protocol);
    put_u16(out, 0);
    put_address(out, src);
    put_address(out, dst);
    auto header = std::span<const std::uint8_t>(out).subspan(kEthernetHeader, kIpv4Header);
    set_u16(out, kEthernetHeader + 10, internet_checksum(header));
  } else {
    put_u16(out, kEtherTypeIpv6);
    put_u32(out, 0x60000000);  // version 6, traffic class 0, flow label 0
    put_u16(out, static_cast<std::uint16_t>(l4_bytes));
    out.push_back(protocol);
    out.push_back(kDefaultTtl);
    put_address(out, src);
    put_address(out, dst);
  }
  return out;
}

// Fills the checksum at `checksum_at` (from the upper-layer header's start
// `l4`) of the message that ends the frame.
void set_l4_checksum(std::vector<std::uint8_t>& frame, std::size_t l4, std::size_t checksum_at, std::uint32_t sum,
                     bool zero_is_none = false) {
  std::uint16_t checksum = internet_checksum(std::span<const std::uint8_t>(frame).subspan(l4), sum);
  // UDP's 0 means "no checksum"; a sum that comes out 0 is sent as its
  // other form (RFC 768, RFC 8200 8.1).
  if (zero_is_none && checksum == 0) checksum = 0xffff;
  set_u16(frame, l4 + checksum_at, checksum);
}

}  // namespace

std::string to_string(const Endpoint& e) { return host_port(e.address.to_string(), e.port); }

std::string host_port(std::string_view host, std::uint16_t port) {
  std::string h(host);
  return (h.find(':') == std::string::npos ? h : "[" + h + "]") + ":" + std::to_string(port);
}

socklen_t to_sockaddr(const Endpoint& e, sockaddr_storage& out) {
  std::memset(&out, 0, sizeof out);
  if (e.address.is_v4()) {
    auto* s = reinterpret_cast<sockaddr_in*>(&out);
    s->sin_family = AF_INET;
    s->sin_port = htons(e.port);
    std::memcpy(&s->sin_addr, e.address.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* s = reinterpret_cast<sockaddr_in6*>(&out);
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(e.port);
  std::memcpy(&s->sin6_addr, e.address.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

std::optional<Endpoint> endpoint_of(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(&address);
    const auto* b = reinterpret_cast<const std::uint8_t*>(&s->sin_addr);
    return Endpoint{IpAddress::v4(b[0], b[1], b[2], b[3]), ntohs(s->sin_port)};
  }
  if (address.ss_family == AF_INET6) {
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&address);
    IpAddress a{IpAddress::Family::kV6, {}};
    std::memcpy(a.bytes.data(), &s->sin6_addr, 16);
    return Endpoint{a, ntohs(s->sin6_port)};
  }
  return std::nullopt;
}

Result<FrameView> parse_frame(std::span<const std::uint8_t> frame) {
  if (frame.size() < kEthernetHeader) return packet_error("shorter than an Ethernet header");
  FrameView v;
  std::copy_n(frame.begin(), 6, v.dst_mac.bytes.begin());
  std::copy_n(frame.begin() + 6, 6, v.src_mac.bytes.begin());
  v.ethertype = get_u16(frame, 12);
  auto ip = frame.subspan(kEthernetHeader);
  switch (v.ethertype) {
    case kEtherTypeArp: v.l3 = L3::kArp; break;
    case kEtherTypeIpv4: MOAT_TRY(parse_ipv4(ip, v)); break;
    case kEtherTypeIpv6: MOAT_TRY(parse_ipv6(ip, v)); break;
    default: break;  // VLAN tags, 802.3 lengths and the rest: not for the filter to read
  }
  return v;
}

std::vector<std::uint8_t> build_tcp_segment(const MacAddress& src_mac, const MacAddress& dst_mac, const Endpoint& src,
                                            const Endpoint& dst, std::uint32_t seq, std::uint32_t ack,
                                            std::uint8_t flags, std::uint16_t window,
                                            std::span<const std::uint8_t> payload) {
  std::size_t l4_bytes = kTcpHeader + payload.size();
  if (!fits(src.address, dst.address, l4_bytes)) return {};
  auto out = frame_head(src_mac, dst_mac, src.address, dst.address, kIpProtoTcp, l4_bytes);
  std::size_t l4 = out.size();
  put_u16(out, src.port);
  put_u16(out, dst.port);
  put_u32(out, seq);
  put_u32(out, ack);
  out.push_back(kTcpHeader / 4 << 4);
  out.push_back(flags);
  put_u16(out, window);
  put_u16(out, 0);  // checksum
  put_u16(out, 0);  // urgent pointer
  out.insert(out.end(), payload.begin(), payload.end());
  set_l4_checksum(out, l4, 16, pseudo_header_sum(src.address, dst.address, kIpProtoTcp, l4_bytes));
  return out;
}

namespace {

// One's complement sum of `delta` folded into the checksum at `at`
// (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
void adjust_checksum(std::span<std::uint8_t> frame, std::size_t at, std::uint32_t delta) {
  std::uint32_t sum = static_cast<std::uint32_t>(~(frame[at] << 8 | frame[at + 1]) & 0xffff) + delta;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  std::uint16_t checksum = static_cast<std::uint16_t>(~sum & 0xffff);
  frame[at] = static_cast<std::uint8_t>(checksum >> 8);
  frame[at + 1] = static_cast<std::uint8_t>(checksum & 0xff);
}

// Replaces the 16-bit word at `at` with `value`; what that adds to a
// checksum's sum (~old + new).
std::uint32_t replace_word(std::span<std::uint8_t> frame, std::size_t at, std::uint16_t value) {
  std::uint32_t old = static_cast<std::uint32_t>(frame[at] << 8 | frame[at + 1]);
  frame[at] = static_cast<std::uint8_t>(value >> 8);
  frame[at + 1] = static_cast<std::uint8_t>(value & 0xff);
  return (~old & 0xffff) + value;
}

}  // namespace

void rewrite_tcp_endpoint(std::span<std::uint8_t> frame, const FrameView& segment, bool source, const Endpoint& to) {
  const bool v4 = segment.l3 == L3::kIpv4;
  const std::size_t ip = static_cast<std::size_t>(segment.ip_packet.data() - frame.data());
  const std::size_t l4 = static_cast<std::size_t>(segment.l4_packet.data() - frame.data());
  const std::size_t address_at = ip + (v4 ? (source ? 12 : 16) : (source ? 8 : 24));
  std::uint32_t address_delta = 0;
  for (std::size_t i = 0; i < to.address.size(); i += 2)
    address_delta += replace_word(frame, address_at + i,
                                  static_cast<std::uint16_t>(to.address.bytes[i] << 8 | to.address.bytes[i + 1]));
  std::uint32_t port_delta = replace_word(frame, l4 + (source ? 0 : 2), to.port);
  if (v4) adjust_checksum(frame, ip + 10, address_delta);
  adjust_checksum(frame, l4 + 16, address_delta + port_delta);
}

std::vector<std::uint8_t> build_reset_reply(const FrameView& segment) {
  // A reset answered with a reset could go back and forth for ever.
  if (segment.l4 != L4::kTcp || (segment.tcp_flags & kTcpRst)) return {};
  Endpoint from{segment.dst, segment.dst_port};
  Endpoint to{segment.src, segment.src_port};
  if (segment.tcp_flags & kTcpAck)
    return build_tcp_segment(segment.dst_mac, segment.src_mac, from, to, segment.ack, 0, kTcpRst, 0);
  // SYN and FIN each take a sequence number; the count wraps as sequence
  // numbers do.
  std::uint32_t length = static_cast<std::uint32_t>(segment.payload.size()) + ((segment.tcp_flags & kTcpSyn) ? 1 : 0) +
                         ((segment.tcp_flags & kTcpFin) ? 1 : 0);
  return build_tcp_segment(segment.dst_mac, segment.src_mac, from, to, 0, segment.seq + length, kTcpRst | kTcpAck, 0);
}

std::vector<std::uint8_t> build_udp_datagram(const MacAddress& src_mac, const MacAddress& dst_mac, const Endpoint& src,
                                             const Endpoint& dst, std::span<const std::uint8_t> payload) {
  std::size_t l4_bytes = kUdpHeader + payload.size();
  // UDP's own length field is 16 bits too, over IPv6 as well.
  if (!fits(src.address, dst.address, l4_bytes) || l4_bytes > kMaxIpPacket) return {};
  auto out = frame_head(src_mac, dst_mac, src.address, dst.address, kIpProtoUdp, l4_bytes);
  std::size_t l4 = out.size();
  put_u16(out, src.port);
  put_u16(out, dst.port);
  put_u16(out, static_cast<std::uint16_t>(l4_bytes));
  put_u16(out, 0);  // checksum
  out.insert(out.end(), payload.begin(), payload.end());
  set_l4_checksum(out, l4, 6, pseudo_header_sum(src.address, dst.address, kIpProtoUdp, l4_bytes),
                  /*zero_is_none=*/true);
  return out;
}

std::vector<std::uint8_t> build_port_unreachable(const FrameView& packet) {
  if ((packet.l3 != L3::kIpv4 && packet.l3 != L3::kIpv6) || packet.ip_packet.empty()) return {};
  bool v4 = packet.l3 == L3::kIpv4;
  if (packet.src.is_v4() != v4 || packet.dst.is_v4() != v4) return {};
  std::size_t quoted = v4 ? static_cast<std::size_t>(packet.ip_packet[0] & 0x0f) * 4 + kIcmpQuotedData
                          : kIpv6MinMtu - kIpv6Header - kIcmpHeader;
  auto quote = packet.ip_packet.first(std::min(quoted, packet.ip_packet.size()));
  std::size_t l4_bytes = kIcmpHeader + quote.size();
  std::uint8_t protocol = v4 ? kIpProtoIcmp : kIpProtoIcmpv6;
  auto out = frame_head(packet.dst_mac, packet.src_mac, packet.dst, packet.src, protocol, l4_bytes);
  std::size_t l4 = out.size();
  out.push_back(v4 ? kIcmpDestinationUnreachable : kIcmpv6DestinationUnreachable);
  out.push_back(v4 ? kIcmpPortUnreachable : kIcmpv6PortUnreachable);
  put_u16(out, 0);  // checksum
  put_u32(out, 0);  // unused
  out.insert(out.end(), quote.begin(), quote.end());
  // ICMPv6 covers the pseudo-header (RFC 4443 2.3); ICMP only the message.
  set_l4_checksum(out, l4, 2, v4 ? 0 : pseudo_header_sum(packet.dst, packet.src, protocol, l4_bytes));
  return out;
}

std::uint16_t internet_checksum(std::span<const std::uint8_t> data, std::uint32_t sum) {
  // 64 bits hold the sum of any span without folding on the way.
  std::uint64_t total = sum;
  std::size_t i = 0;
  for (; i + 1 < data.size(); i += 2) total += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  if (i < data.size()) total += static_cast<std::uint32_t>(data[i] << 8);  // an odd byte, padded with zero
  while (total >> 16) total = (total & 0xffff) + (total >> 16);
  return static_cast<std::uint16_t>(~total);
}

}  // namespace moat::net
