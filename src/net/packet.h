// Ethernet frames on the guest's link, as the shim's network filter sees
// them: the guest's frames before they reach the user-mode stack, and the
// frames the filter answers with itself (resets, ICMP errors, DNS answers).
//
// Every guest frame is hostile. parse_frame reads nothing past the bytes
// given, believes no length field it has not checked against them, and
// walks at most kMaxIpv6ExtensionHeaders IPv6 extension headers. A frame
// it cannot account for is an error: the filter drops it.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/ip_address.h"
#include "util/result.h"

namespace moat::net {

struct MacAddress {
  std::array<std::uint8_t, 6> bytes{};
  friend bool operator==(const MacAddress&, const MacAddress&) = default;
};

inline constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherTypeArp = 0x0806;
inline constexpr std::uint16_t kEtherTypeIpv6 = 0x86dd;

inline constexpr std::uint8_t kIpProtoIcmp = 1;
inline constexpr std::uint8_t kIpProtoTcp = 6;
inline constexpr std::uint8_t kIpProtoUdp = 17;
inline constexpr std::uint8_t kIpProtoIcmpv6 = 58;

inline constexpr std::uint8_t kTcpFin = 0x01;
inline constexpr std::uint8_t kTcpSyn = 0x02;
inline constexpr std::uint8_t kTcpRst = 0x04;
inline constexpr std::uint8_t kTcpPsh = 0x08;
inline constexpr std::uint8_t kTcpAck = 0x10;

inline constexpr std::size_t kEthernetHeader = 14;
inline constexpr std::size_t kMaxIpv6ExtensionHeaders = 8;

enum class L3 { kOther, kArp, kIpv4, kIpv6 };
enum class L4 { kNone, kOther, kTcp, kUdp, kIcmp, kIcmpv6 };

// What a frame is. Spans point into the frame given to parse_frame.
struct FrameView {
  MacAddress dst_mac, src_mac;
  std::uint16_t ethertype = 0;
  L3 l3 = L3::kOther;

  // kIpv4, kIpv6:
  IpAddress src, dst;
  std::uint8_t ip_protocol = 0;  // the upper-layer protocol (after IPv6 extension headers)
  // Any fragment, the first included. The filter decides on whole
  // datagrams only; for a fragment past the first, l4 is kNone.
  bool fragment = false;
  // The IP packet: from its header to the end its length field gives
  // (Ethernet padding excluded).
  std::span<const std::uint8_t> ip_packet;
  // The upper-layer message: its header and what follows (kTcp, kUdp,
  // kIcmp, kIcmpv6).
  std::span<const std::uint8_t> l4_packet;

  L4 l4 = L4::kNone;
  std::uint16_t src_port = 0, dst_port = 0;  // kTcp, kUdp
  std::uint32_t seq = 0, ack = 0;            // kTcp
  std::uint8_t tcp_flags = 0;                // kTcp
  std::uint16_t window = 0;                  // kTcp
  std::uint8_t icmp_type = 0, icmp_code = 0; // kIcmp, kIcmpv6
  // kTcp, kUdp: the data after the header (UDP: as many bytes as its
  // length gives). A first fragment holds only the start of a datagram, so
  // there the payload is what it holds and a UDP length past it is no error.
  std::span<const std::uint8_t> payload;

  bool is_tcp_syn() const { return l4 == L4::kTcp && (tcp_flags & (kTcpSyn | kTcpAck | kTcpRst)) == kTcpSyn; }
};

// EINVAL saying what is wrong: short or truncated headers, a length field
// past the frame, a bad IP version or header length, too many IPv6
// extension headers, hop-by-hop options other than first. ARP and other
// ethertypes parse with l3 set and nothing more read.
Result<FrameView> parse_frame(std::span<const std::uint8_t> frame);

struct Endpoint {
  IpAddress address;
  std::uint16_t port = 0;
};

// "93.184.216.34:443", "[::1]:53".
std::string to_string(const Endpoint& e);
// HOST:PORT for a name or an address (brackets around an IPv6 one):
// "api.example.com:443", "[::1]:53".
std::string host_port(std::string_view host, std::uint16_t port);
// `e` as a socket address; its length.
socklen_t to_sockaddr(const Endpoint& e, sockaddr_storage& out);
// The endpoint an AF_INET or AF_INET6 socket address holds; nullopt for
// any other family.
std::optional<Endpoint> endpoint_of(const sockaddr_storage& address);

// A TCP segment in an Ethernet frame with valid IP and TCP checksums (IPv4
// or IPv6 by the endpoints' family, which must agree). TTL/hop limit 64,
// IPv4 with DF set, no TCP options. Empty if the families differ or the
// payload does not fit one IP packet.
std::vector<std::uint8_t> build_tcp_segment(const MacAddress& src_mac, const MacAddress& dst_mac, const Endpoint& src,
                                            const Endpoint& dst, std::uint32_t seq, std::uint32_t ack,
                                            std::uint8_t flags, std::uint16_t window,
                                            std::span<const std::uint8_t> payload = {});

// Rewrites, in place, the source (`source` true) or destination address and
// port of the TCP segment `segment` parsed from `frame`, updating the IPv4
// header checksum and the TCP checksum for the change (RFC 1624), so the
// rest of the frame is left as it was. `to` must be of the segment's family.
void rewrite_tcp_endpoint(std::span<std::uint8_t> frame, const FrameView& segment, bool source, const Endpoint& to);

// The reset a TCP stack answers `segment` with when nothing listens (RFC
// 9293 3.10.7.1), from the segment's destination to its source: with ACK
// set in the segment, seq = its ack and only RST; otherwise seq 0 and
// RST|ACK acknowledging seq + data length + SYN + FIN. Empty for a reset
// (never answered) and for anything but TCP.
std::vector<std::uint8_t> build_reset_reply(const FrameView& segment);

// A UDP datagram in an Ethernet frame, checksummed (IPv4 or IPv6 by the
// endpoints' family). Empty if the families differ or the payload does not
// fit one datagram.
std::vector<std::uint8_t> build_udp_datagram(const MacAddress& src_mac, const MacAddress& dst_mac, const Endpoint& src,
                                             const Endpoint& dst, std::span<const std::uint8_t> payload);

// "Port unreachable" for `packet` (an IPv4 or IPv6 one), sent from its
// destination to its source: ICMP type 3 code 3 with the IP header and 8
// bytes of the packet, or ICMPv6 type 1 code 4 with as much of it as keeps
// the answer within the IPv6 minimum MTU (1280). Empty for anything else.
// Whether to answer at all is the caller's: never an ICMP error, a
// multicast or broadcast, or a fragment past the first (RFC 1122 3.2.2,
// RFC 4443 2.4 (e)).
std::vector<std::uint8_t> build_port_unreachable(const FrameView& packet);

// The Internet checksum (RFC 1071) of `data`, folded and complemented,
// continuing from `sum` (an unfolded partial sum).
std::uint16_t internet_checksum(std::span<const std::uint8_t> data, std::uint32_t sum = 0);

}  // namespace moat::net
