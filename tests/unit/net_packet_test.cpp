// Ethernet frames (src/net/packet.h): hand-written frames read field by
// field, every truncation and bad length refused without reading past the
// frame, fragments and IPv6 extension headers bounded, and the frames the
// filter builds (segments, datagrams, resets, port unreachables) read back
// with checksums that verify.
#include "net/packet.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <initializer_list>
#include <string>
#include <vector>

namespace moat::net {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t kHopByHop = 0;
constexpr std::uint8_t kRouting = 43;
constexpr std::uint8_t kFragment = 44;
constexpr std::uint8_t kDestinationOptions = 60;

const MacAddress kGatewayMac{{0x02, 0, 0, 0, 0, 0x01}};
const MacAddress kGuestMac{{0x02, 0, 0, 0, 0, 0x02}};

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

// A guest's SYN from 10.0.2.15:50000 to 93.184.216.34:443 with an MSS
// option, padded to Ethernet's 60 bytes (58 without).
Bytes ipv4_syn() {
  return {
      // Ethernet: to the gateway, from the guest, IPv4.
      0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00,
      // IPv4: IHL 5, total 44, id 0x1234, DF, TTL 64, TCP, checksum, addresses.
      0x45, 0x00, 0x00, 0x2c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0xe6, 0xae, 0x0a, 0x00, 0x02, 0x0f, 0x5d, 0xb8,
      0xd8, 0x22,
      // TCP: ports 50000 -> 443, seq 0x1000, ack 0, data offset 6, SYN,
      // window 64240, checksum, urgent 0, MSS 1460.
      0xc3, 0x50, 0x01, 0xbb, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa, 0xf0, 0x86, 0x40,
      0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
      // Ethernet padding.
      0x00, 0x00};
}
constexpr std::size_t kIpv4SynUnpadded = 58;

// A guest's UDP datagram from [fd00::15]:54321 to [2001:db8::53]:53 with
// "abcd", after a hop-by-hop options header holding one PadN.
Bytes ipv6_udp_hop_by_hop() {
  return {
      // Ethernet: to the gateway, from the guest, IPv6.
      0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x86, 0xdd,
      // IPv6: payload 20, next header hop-by-hop, hop limit 64, addresses.
      0x60, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x40, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x15, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x53,
      // Hop-by-hop: next UDP, 8 bytes, PadN of 4.
      0x11, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
      // UDP: ports 54321 -> 53, length 12, checksum, "abcd".
      0xd4, 0x31, 0x00, 0x35, 0x00, 0x0c, 0x3b, 0x87, 'a', 'b', 'c', 'd'};
}

Bytes ethernet(std::uint16_t ethertype) {
  Bytes f = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02};
  f.push_back(static_cast<std::uint8_t>(ethertype >> 8));
  f.push_back(static_cast<std::uint8_t>(ethertype));
  return f;
}

// An IPv4 packet of `l4` (checksum left 0: the parser does not verify it).
Bytes ipv4_frame(std::uint8_t protocol, const Bytes& l4, std::uint16_t fragment = 0x4000) {
  Bytes f = ethernet(kEtherTypeIpv4);
  std::size_t total = 20 + l4.size();
  f.insert(f.end(), {0x45, 0, static_cast<std::uint8_t>(total >> 8), static_cast<std::uint8_t>(total), 0, 0,
                     static_cast<std::uint8_t>(fragment >> 8), static_cast<std::uint8_t>(fragment), 64, protocol, 0,
                     0, 10, 0, 2, 15, 10, 0, 2, 2});
  f.insert(f.end(), l4.begin(), l4.end());
  return f;
}

// An IPv6 packet whose first next header is `next`, then `rest`.
Bytes ipv6_frame(std::uint8_t next, const Bytes& rest) {
  Bytes f = ethernet(kEtherTypeIpv6);
  f.insert(f.end(), {0x60, 0, 0, 0, static_cast<std::uint8_t>(rest.size() >> 8),
                     static_cast<std::uint8_t>(rest.size()), next, 64});
  f.insert(f.end(), 15, 0);
  f.push_back(0x15);
  f.insert(f.end(), 15, 0);
  f.push_back(0x01);
  f.insert(f.end(), rest.begin(), rest.end());
  return f;
}

// An 8-byte destination options header (one PadN) before `next`.
Bytes destination_options(std::uint8_t next) { return {next, 0, 0x01, 0x04, 0, 0, 0, 0}; }

Bytes fragment_header(std::uint8_t next, std::uint16_t offset_words, bool more) {
  auto field = static_cast<std::uint16_t>(offset_words << 3 | (more ? 1 : 0));
  return {next, 0, static_cast<std::uint8_t>(field >> 8), static_cast<std::uint8_t>(field), 0, 0, 0x12, 0x34};
}

Bytes udp_header(std::uint16_t length) {
  return {0x30, 0x39, 0x00, 0x35, static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length), 0, 0};
}

Bytes tcp_header(std::uint8_t data_offset) {
  Bytes h(20, 0);
  h[12] = static_cast<std::uint8_t>(data_offset << 4);
  h[13] = kTcpAck;
  return h;
}

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A parsed frame. One parsed from a temporary holds its bytes, so the
// spans stay valid as long as it lives (a move keeps the buffer).
struct Parsed : FrameView {
  Parsed(const FrameView& v, Bytes bytes) : FrameView(v), frame(std::move(bytes)) {}
  Parsed(Parsed&&) = default;
  Bytes frame;
};

FrameView parse_view(const Bytes& frame) {
  auto v = parse_frame(frame);
  EXPECT_TRUE(v.ok()) << v.error().message;
  return v.ok() ? *v : FrameView{};
}

Parsed parse(const Bytes& frame) { return Parsed(parse_view(frame), {}); }

Parsed parse(Bytes&& frame) {
  FrameView v = parse_view(frame);
  return Parsed(v, std::move(frame));
}

void expect_bad(const Bytes& frame, const std::string& why) {
  auto v = parse_frame(frame);
  ASSERT_FALSE(v.ok()) << "parsed; expected: " << why;
  EXPECT_EQ(v.error().code, EINVAL);
  EXPECT_EQ(v.error().message, "packet: " + why);
}

// The pseudo-header sum, written out here apart from the library's.
std::uint32_t pseudo_header(const IpAddress& src, const IpAddress& dst, std::uint8_t protocol, std::size_t length) {
  std::uint32_t sum = protocol + static_cast<std::uint32_t>(length);
  for (const IpAddress* a : {&src, &dst})
    for (std::size_t i = 0; i < a->size(); i += 2)
      sum += static_cast<std::uint32_t>(a->bytes[i] << 8 | a->bytes[i + 1]);
  return sum;
}

// The upper-layer message of a packet without IPv6 extension headers.
std::span<const std::uint8_t> l4_message(const FrameView& v) {
  std::size_t header = v.l3 == L3::kIpv4 ? static_cast<std::size_t>(v.ip_packet[0] & 0x0f) * 4 : 40;
  return v.ip_packet.subspan(header);
}

// A correct checksum makes the sum over what it covers come out 0.
void expect_checksums_verify(const FrameView& v) {
  if (v.l3 == L3::kIpv4) {
    EXPECT_EQ(internet_checksum(v.ip_packet.first(20)), 0) << "IPv4 header";
  }
  auto l4 = l4_message(v);
  std::uint32_t sum = v.l4 == L4::kIcmp ? 0 : pseudo_header(v.src, v.dst, v.ip_protocol, l4.size());
  EXPECT_EQ(internet_checksum(l4, sum), 0) << "upper-layer checksum";
}

// Each prefix of `frame` shorter than `valid_from` fails; each longer one
// (cut only into padding) parses with every span inside it. Each is copied
// to a buffer of its own size, so a sanitizer build sees any read past it.
void expect_prefixes_fail_or_stay_inside(const Bytes& frame, std::size_t valid_from) {
  for (std::size_t n = 0; n < frame.size(); ++n) {
    Bytes prefix(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
    auto v = parse_frame(prefix);
    if (n < valid_from) {
      EXPECT_FALSE(v.ok()) << "prefix of " << n << " bytes parsed";
      continue;
    }
    ASSERT_TRUE(v.ok()) << "prefix of " << n << " bytes: " << v.error().message;
    auto inside = [&](std::span<const std::uint8_t> s) {
      return s.empty() || (s.data() >= prefix.data() && s.data() + s.size() <= prefix.data() + n);
    };
    EXPECT_TRUE(inside(v->ip_packet)) << n;
    EXPECT_TRUE(inside(v->payload)) << n;
  }
}

TEST(NetPacket, ReadsAnIpv4TcpSynFieldByField) {
  Bytes frame = ipv4_syn();
  Parsed v = parse(frame);
  EXPECT_EQ(v.dst_mac, kGatewayMac);
  EXPECT_EQ(v.src_mac, kGuestMac);
  EXPECT_EQ(v.ethertype, kEtherTypeIpv4);
  EXPECT_EQ(v.l3, L3::kIpv4);
  EXPECT_EQ(v.src, IpAddress::v4(10, 0, 2, 15));
  EXPECT_EQ(v.dst, IpAddress::v4(93, 184, 216, 34));
  EXPECT_EQ(v.ip_protocol, kIpProtoTcp);
  EXPECT_FALSE(v.fragment);
  // The IP packet ends where its total length says, before the padding.
  EXPECT_EQ(v.ip_packet.data(), frame.data() + 14);
  EXPECT_EQ(v.ip_packet.size(), 44u);
  EXPECT_EQ(v.l4, L4::kTcp);
  EXPECT_EQ(v.src_port, 50000);
  EXPECT_EQ(v.dst_port, 443);
  EXPECT_EQ(v.seq, 0x1000u);
  EXPECT_EQ(v.ack, 0u);
  EXPECT_EQ(v.tcp_flags, kTcpSyn);
  EXPECT_EQ(v.window, 64240);
  EXPECT_TRUE(v.is_tcp_syn());
  // The payload starts after the MSS option, and is empty.
  EXPECT_EQ(v.payload.data(), frame.data() + kIpv4SynUnpadded);
  EXPECT_TRUE(v.payload.empty());
  expect_checksums_verify(v);
}

TEST(NetPacket, ReadsAnIpv6UdpDatagramAfterHopByHopOptions) {
  Bytes frame = ipv6_udp_hop_by_hop();
  Parsed v = parse(frame);
  EXPECT_EQ(v.ethertype, kEtherTypeIpv6);
  EXPECT_EQ(v.l3, L3::kIpv6);
  EXPECT_EQ(v.src, ip("fd00::15"));
  EXPECT_EQ(v.dst, ip("2001:db8::53"));
  EXPECT_EQ(v.ip_protocol, kIpProtoUdp);
  EXPECT_FALSE(v.fragment);
  EXPECT_EQ(v.ip_packet.size(), 60u);
  EXPECT_EQ(v.l4, L4::kUdp);
  EXPECT_EQ(v.src_port, 54321);
  EXPECT_EQ(v.dst_port, 53);
  EXPECT_EQ(Bytes(v.payload.begin(), v.payload.end()), (Bytes{'a', 'b', 'c', 'd'}));
  EXPECT_FALSE(v.is_tcp_syn());
  // The checksum covers the UDP datagram only, not the options before it.
  auto udp = v.ip_packet.subspan(48);
  EXPECT_EQ(internet_checksum(udp, pseudo_header(v.src, v.dst, kIpProtoUdp, udp.size())), 0);
}

TEST(NetPacket, EveryPrefixFailsOrStaysInsideIt) {
  expect_prefixes_fail_or_stay_inside(ipv4_syn(), kIpv4SynUnpadded);
  Bytes v6 = ipv6_udp_hop_by_hop();
  expect_prefixes_fail_or_stay_inside(v6, v6.size());
  Bytes data(300, 0x5a);
  Bytes segment = build_tcp_segment(kGuestMac, kGatewayMac, {ip("fd00::15"), 40000}, {ip("2001:db8::1"), 80}, 1, 2,
                                    kTcpAck | kTcpPsh, 1000, data);
  expect_prefixes_fail_or_stay_inside(segment, segment.size());
  Bytes unreachable = build_port_unreachable(parse(ipv4_syn()));
  expect_prefixes_fail_or_stay_inside(unreachable, unreachable.size());
  // ARP is named by its ethertype alone: any frame past the Ethernet header.
  expect_prefixes_fail_or_stay_inside(ethernet(kEtherTypeArp) + Bytes(28, 1), 14);
}

TEST(NetPacket, ArpAndOtherEthertypesAreOnlyNamed) {
  Parsed arp = parse(ethernet(kEtherTypeArp) + Bytes(28, 0xff));
  EXPECT_EQ(arp.l3, L3::kArp);
  EXPECT_EQ(arp.ethertype, kEtherTypeArp);
  EXPECT_EQ(arp.l4, L4::kNone);
  EXPECT_TRUE(arp.ip_packet.empty());
  // A VLAN tag, even one in front of IPv4, is just another ethertype.
  Parsed vlan = parse(ethernet(0x8100) + Bytes{0, 5, 0x08, 0x00} + Bytes(40, 0));
  EXPECT_EQ(vlan.l3, L3::kOther);
  EXPECT_EQ(vlan.ethertype, 0x8100);
  EXPECT_EQ(parse(ethernet(0x0040)).l3, L3::kOther);  // an 802.3 length
  expect_bad(Bytes(13, 0), "shorter than an Ethernet header");
}

TEST(NetPacket, RefusesBadIpv4Headers) {
  Bytes good = ipv4_syn();
  expect_bad(Bytes(good.begin(), good.begin() + 33), "shorter than an IPv4 header");
  Bytes version = good;
  version[14] = 0x65;
  expect_bad(version, "IPv4 version is not 4");
  Bytes short_header = good;
  short_header[14] = 0x44;
  expect_bad(short_header, "IPv4 header length below 5");
  Bytes long_header = good;
  long_header[14] = 0x4f;  // 60 bytes of header in a packet of 44
  expect_bad(long_header, "IPv4 total length shorter than its header");
  Bytes past = good;
  past[17] = 61;  // one byte more than the padded frame holds
  expect_bad(past, "IPv4 total length past the frame");
  Bytes below = good;
  below[17] = 19;
  expect_bad(below, "IPv4 total length shorter than its header");
  // Options count in the header length: one word of NOPs.
  Bytes options = ipv4_frame(kIpProtoUdp, Bytes{1, 1, 1, 1} + udp_header(8));
  options[14] = 0x46;
  Parsed v = parse(options);
  EXPECT_EQ(v.l4, L4::kUdp);
  EXPECT_EQ(v.src_port, 12345);
}

TEST(NetPacket, RefusesBadIpv6Headers) {
  Bytes good = ipv6_udp_hop_by_hop();
  expect_bad(Bytes(good.begin(), good.begin() + 53), "shorter than an IPv6 header");
  Bytes version = good;
  version[14] = 0x40;
  expect_bad(version, "IPv6 version is not 6");
  Bytes past = good;
  past[19] = 21;
  expect_bad(past, "IPv6 payload length past the frame");
  // A hop-by-hop header claiming 16 bytes where 20 remain: the UDP header
  // it swallows leaves a short one.
  Bytes long_options = good;
  long_options[55] = 1;
  expect_bad(long_options, "shorter than a UDP header");
  Bytes longer_options = good;
  longer_options[55] = 2;
  expect_bad(longer_options, "IPv6 extension header past the packet");
  expect_bad(ipv6_frame(kDestinationOptions, {}), "IPv6 extension header past the packet");
  expect_bad(ipv6_frame(kDestinationOptions, {kIpProtoUdp, 0, 1, 2, 0, 0}), "IPv6 extension header past the packet");
}

TEST(NetPacket, RefusesBadUpperLayerHeaders) {
  expect_bad(ipv4_frame(kIpProtoTcp, Bytes(19, 0)), "shorter than a TCP header");
  expect_bad(ipv4_frame(kIpProtoTcp, tcp_header(4)), "TCP data offset below 5");
  // A data offset of 6 words in a 20-byte segment, and of 15 in a 56-byte one.
  expect_bad(ipv4_frame(kIpProtoTcp, tcp_header(6)), "TCP data offset past the packet");
  expect_bad(ipv6_frame(kIpProtoTcp, tcp_header(15) + Bytes(36, 0)), "TCP data offset past the packet");
  EXPECT_EQ(parse(ipv6_frame(kIpProtoTcp, tcp_header(15) + Bytes(40, 0))).payload.size(), 0u);

  expect_bad(ipv4_frame(kIpProtoUdp, Bytes(7, 0)), "shorter than a UDP header");
  expect_bad(ipv4_frame(kIpProtoUdp, udp_header(7)), "UDP length below 8");
  expect_bad(ipv4_frame(kIpProtoUdp, udp_header(13) + Bytes{'a', 'b', 'c', 'd'}), "UDP length past the packet");
  expect_bad(ipv6_frame(kIpProtoUdp, udp_header(9)), "UDP length past the packet");
  // A UDP length short of the IP payload ends the datagram there.
  Parsed trailing = parse(ipv4_frame(kIpProtoUdp, udp_header(10) + Bytes{'a', 'b', 'c', 'd'}));
  EXPECT_EQ(Bytes(trailing.payload.begin(), trailing.payload.end()), (Bytes{'a', 'b'}));

  expect_bad(ipv4_frame(kIpProtoIcmp, Bytes{8, 0, 0, 0}), "shorter than an ICMP header");
  expect_bad(ipv6_frame(kIpProtoIcmpv6, Bytes{128, 0, 0, 0, 0, 0, 0}), "shorter than an ICMP header");
  Parsed echo = parse(ipv4_frame(kIpProtoIcmp, Bytes{8, 0, 0, 0, 0, 1, 0, 1}));
  EXPECT_EQ(echo.l4, L4::kIcmp);
  EXPECT_EQ(echo.icmp_type, 8);
  EXPECT_EQ(echo.icmp_code, 0);
  Parsed solicitation = parse(ipv6_frame(kIpProtoIcmpv6, Bytes{135, 0, 0, 0, 0, 0, 0, 0} + Bytes(16, 0)));
  EXPECT_EQ(solicitation.l4, L4::kIcmpv6);
  EXPECT_EQ(solicitation.icmp_type, 135);

  // Other protocols, and each ICMP over the other IP, are only named.
  Parsed gre = parse(ipv4_frame(47, Bytes(4, 0)));
  EXPECT_EQ(gre.l4, L4::kOther);
  EXPECT_EQ(gre.ip_protocol, 47);
  EXPECT_EQ(parse(ipv4_frame(kIpProtoIcmpv6, Bytes(8, 0))).l4, L4::kOther);
  EXPECT_EQ(parse(ipv6_frame(kIpProtoIcmp, Bytes(8, 0))).l4, L4::kOther);
  Parsed nothing = parse(ipv6_frame(59, {}));  // "no next header"
  EXPECT_EQ(nothing.l4, L4::kOther);
  EXPECT_EQ(nothing.ip_protocol, 59);
}

TEST(NetPacket, Ipv4FragmentsPastTheFirstAreNotRead) {
  // Offset 185 words: what it carries is not a TCP header.
  Parsed later = parse(ipv4_frame(kIpProtoTcp, Bytes(3, 0), 185));
  EXPECT_TRUE(later.fragment);
  EXPECT_EQ(later.l4, L4::kNone);
  EXPECT_EQ(later.ip_protocol, kIpProtoTcp);
  // The first one (MF, offset 0) is read: its UDP length counts the whole
  // datagram, and its payload is the part it holds.
  Parsed first = parse(ipv4_frame(kIpProtoUdp, udp_header(1480) + Bytes(64, 7), 0x2000));
  EXPECT_TRUE(first.fragment);
  EXPECT_EQ(first.l4, L4::kUdp);
  EXPECT_EQ(first.payload.size(), 64u);
  // The last one (offset set, MF clear) is a fragment too.
  Parsed last = parse(ipv4_frame(kIpProtoUdp, Bytes(8, 0), 0x4000 | 1));
  EXPECT_TRUE(last.fragment);
  EXPECT_EQ(last.l4, L4::kNone);
  EXPECT_FALSE(parse(ipv4_frame(kIpProtoUdp, udp_header(8))).fragment);
}

TEST(NetPacket, Ipv6FragmentHeaders) {
  Parsed later = parse(ipv6_frame(kFragment, fragment_header(kIpProtoUdp, 181, true) + Bytes(16, 0)));
  EXPECT_TRUE(later.fragment);
  EXPECT_EQ(later.l4, L4::kNone);
  EXPECT_EQ(later.ip_protocol, kIpProtoUdp);
  Parsed first =
      parse(ipv6_frame(kFragment, fragment_header(kIpProtoUdp, 0, true) + udp_header(3000) + Bytes(1000, 1)));
  EXPECT_TRUE(first.fragment);
  EXPECT_EQ(first.l4, L4::kUdp);
  EXPECT_EQ(first.dst_port, 53);
  EXPECT_EQ(first.payload.size(), 1000u);
  // After destination options, and with more headers after it.
  Parsed nested = parse(ipv6_frame(
      kDestinationOptions, destination_options(kFragment) + fragment_header(kDestinationOptions, 0, false) +
                               destination_options(kIpProtoTcp) + tcp_header(5)));
  EXPECT_TRUE(nested.fragment);
  EXPECT_EQ(nested.l4, L4::kTcp);
  expect_bad(ipv6_frame(kFragment, Bytes{kIpProtoUdp, 0, 0, 0, 0, 0, 0}), "IPv6 extension header past the packet");
}

TEST(NetPacket, Ipv6ExtensionHeadersAreBounded) {
  // Hop-by-hop, a routing header of 24 bytes, then six destination options:
  // eight headers, as many as are walked.
  Bytes eight = Bytes{kRouting, 0, 1, 4, 0, 0, 0, 0} + Bytes{kDestinationOptions, 2, 0, 0} + Bytes(20, 0);
  for (int i = 0; i < 5; ++i) eight = eight + destination_options(kDestinationOptions);
  eight = eight + destination_options(kIpProtoUdp) + udp_header(8);
  Parsed v = parse(ipv6_frame(kHopByHop, eight));
  EXPECT_EQ(v.l4, L4::kUdp);
  EXPECT_EQ(v.ip_protocol, kIpProtoUdp);

  Bytes nine;
  for (int i = 0; i < 8; ++i) nine = nine + destination_options(kDestinationOptions);
  nine = nine + destination_options(kIpProtoUdp) + udp_header(8);
  expect_bad(ipv6_frame(kDestinationOptions, nine), "more than 8 IPv6 extension headers");
  // Endless options (each naming another) stop at the ninth as well.
  Bytes endless;
  for (int i = 0; i < 100; ++i) endless = endless + destination_options(kDestinationOptions);
  expect_bad(ipv6_frame(kDestinationOptions, endless), "more than 8 IPv6 extension headers");

  expect_bad(ipv6_frame(kDestinationOptions, destination_options(kHopByHop) + destination_options(kIpProtoUdp) +
                                                 udp_header(8)),
             "IPv6 hop-by-hop options not first");
}

TEST(NetPacket, BuiltTcpSegmentsReadBack) {
  const Bytes data = {'G', 'E', 'T', ' ', '/', '\r', '\n'};
  for (auto [from, to] :
       {std::pair{ip("93.184.216.34"), ip("10.0.2.15")}, std::pair{ip("2001:db8::1"), ip("fd00::15")}}) {
    Bytes frame = build_tcp_segment(kGatewayMac, kGuestMac, {from, 443}, {to, 50000}, 0xfffffff0, 0x1001,
                                    kTcpAck | kTcpPsh, 29200, data);
    Parsed v = parse(frame);
    EXPECT_EQ(v.dst_mac, kGuestMac);
    EXPECT_EQ(v.src_mac, kGatewayMac);
    EXPECT_EQ(v.l3, from.is_v4() ? L3::kIpv4 : L3::kIpv6);
    EXPECT_EQ(v.src, from);
    EXPECT_EQ(v.dst, to);
    EXPECT_FALSE(v.fragment);
    EXPECT_EQ(v.l4, L4::kTcp);
    EXPECT_EQ(v.src_port, 443);
    EXPECT_EQ(v.dst_port, 50000);
    EXPECT_EQ(v.seq, 0xfffffff0u);
    EXPECT_EQ(v.ack, 0x1001u);
    EXPECT_EQ(v.tcp_flags, kTcpAck | kTcpPsh);
    EXPECT_EQ(v.window, 29200);
    EXPECT_EQ(Bytes(v.payload.begin(), v.payload.end()), data);
    EXPECT_EQ(frame.size(), 14 + (from.is_v4() ? 20 : 40) + 20 + data.size());
    expect_checksums_verify(v);
  }
  // The IPv4 header as the contract gives it.
  Bytes v4 = build_tcp_segment(kGatewayMac, kGuestMac, {ip("93.184.216.34"), 443}, {ip("10.0.2.15"), 50000}, 0, 0,
                               kTcpSyn, 0);
  EXPECT_EQ(Bytes(v4.begin() + 12, v4.begin() + 24),
            (Bytes{0x08, 0x00, 0x45, 0x00, 0x00, 40, 0x00, 0x00, 0x40, 0x00, 64, kIpProtoTcp}));
  Bytes v6 = build_tcp_segment(kGatewayMac, kGuestMac, {ip("2001:db8::1"), 443}, {ip("fd00::15"), 50000}, 0, 0,
                               kTcpSyn, 0);
  EXPECT_EQ(Bytes(v6.begin() + 12, v6.begin() + 22),
            (Bytes{0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 20, kIpProtoTcp, 64}));
  EXPECT_EQ(v6[14 + 40 + 12], 0x50);  // data offset 5: no options
  // Mixed families build nothing.
  EXPECT_TRUE(build_tcp_segment(kGatewayMac, kGuestMac, {ip("10.0.0.1"), 1}, {ip("::1"), 2}, 0, 0, kTcpSyn, 0).empty());
}

TEST(NetPacket, BuiltUdpDatagramsReadBack) {
  const Bytes data = {0xde, 0xad, 0xbe, 0xef, 0x01};
  for (auto [from, to] : {std::pair{ip("10.0.2.3"), ip("10.0.2.15")}, std::pair{ip("fd00::3"), ip("fd00::15")}}) {
    Bytes frame = build_udp_datagram(kGatewayMac, kGuestMac, {from, 53}, {to, 40000}, data);
    Parsed v = parse(frame);
    EXPECT_EQ(v.src, from);
    EXPECT_EQ(v.dst, to);
    EXPECT_EQ(v.l4, L4::kUdp);
    EXPECT_EQ(v.ip_protocol, kIpProtoUdp);
    EXPECT_EQ(v.src_port, 53);
    EXPECT_EQ(v.dst_port, 40000);
    EXPECT_EQ(Bytes(v.payload.begin(), v.payload.end()), data);
    expect_checksums_verify(v);
    // An empty datagram too.
    Parsed empty = parse(build_udp_datagram(kGatewayMac, kGuestMac, {from, 53}, {to, 40000}, {}));
    EXPECT_EQ(empty.l4, L4::kUdp);
    EXPECT_TRUE(empty.payload.empty());
    expect_checksums_verify(empty);
  }
  EXPECT_TRUE(build_udp_datagram(kGatewayMac, kGuestMac, {ip("fd00::3"), 1}, {ip("10.0.0.1"), 2}, data).empty());
  Bytes huge(65536, 0);
  EXPECT_TRUE(build_udp_datagram(kGatewayMac, kGuestMac, {ip("fd00::3"), 1}, {ip("fd00::4"), 2}, huge).empty());
}

TEST(NetPacket, UdpChecksumThatComesOutZeroIsSentAsAllOnes) {
  for (const char* to : {"10.0.2.15", "fd00::15"}) {
    const Endpoint src{ip(to).is_v4() ? ip("10.0.2.3") : ip("fd00::3"), 53}, dst{ip(to), 40000};
    // Two payload bytes equal to the checksum of the datagram with them 0
    // bring the sum to 0xffff, whose checksum is 0.
    Bytes zero = build_udp_datagram(kGatewayMac, kGuestMac, src, dst, Bytes{0, 0});
    std::size_t checksum_at = zero.size() - 4;
    Bytes data = {zero[checksum_at], zero[checksum_at + 1]};
    Bytes frame = build_udp_datagram(kGatewayMac, kGuestMac, src, dst, data);
    EXPECT_EQ(frame[checksum_at], 0xff) << to;
    EXPECT_EQ(frame[checksum_at + 1], 0xff) << to;
    expect_checksums_verify(parse(frame));
  }
}

TEST(NetPacket, ResetForASynAcknowledgesIt) {
  Bytes syn = ipv4_syn();
  Parsed v = parse(syn);
  Parsed rst = parse(build_reset_reply(v));
  EXPECT_EQ(rst.dst_mac, kGuestMac);
  EXPECT_EQ(rst.src_mac, kGatewayMac);
  EXPECT_EQ(rst.src, IpAddress::v4(93, 184, 216, 34));
  EXPECT_EQ(rst.dst, IpAddress::v4(10, 0, 2, 15));
  EXPECT_EQ(rst.src_port, 443);
  EXPECT_EQ(rst.dst_port, 50000);
  EXPECT_EQ(rst.tcp_flags, kTcpRst | kTcpAck);
  EXPECT_EQ(rst.seq, 0u);
  EXPECT_EQ(rst.ack, 0x1001u);
  EXPECT_EQ(rst.window, 0);
  EXPECT_TRUE(rst.payload.empty());
  expect_checksums_verify(rst);

  // Over IPv6; data, SYN and FIN each count, and the sum wraps.
  const Endpoint guest{ip("fd00::15"), 50000}, remote{ip("2001:db8::1"), 443};
  Bytes data(10, 'x');
  Parsed syn_fin = parse(build_tcp_segment(kGuestMac, kGatewayMac, guest, remote, 0xfffffffa, 0,
                                              kTcpSyn | kTcpFin, 1000, data));
  Parsed rst6 = parse(build_reset_reply(syn_fin));
  EXPECT_EQ(rst6.src, remote.address);
  EXPECT_EQ(rst6.dst, guest.address);
  EXPECT_EQ(rst6.tcp_flags, kTcpRst | kTcpAck);
  EXPECT_EQ(rst6.ack, 6u);
  expect_checksums_verify(rst6);
}

TEST(NetPacket, ResetForAnAckTakesItsSequenceNumber) {
  const Endpoint guest{IpAddress::v4(10, 0, 2, 15), 50000}, remote{IpAddress::v4(198, 51, 100, 7), 22};
  Bytes data = {'h', 'e', 'l', 'l', 'o'};
  Parsed segment =
      parse(build_tcp_segment(kGuestMac, kGatewayMac, guest, remote, 100, 5000, kTcpAck | kTcpPsh, 512, data));
  Parsed rst = parse(build_reset_reply(segment));
  EXPECT_EQ(rst.src, remote.address);
  EXPECT_EQ(rst.src_port, 22);
  EXPECT_EQ(rst.dst, guest.address);
  EXPECT_EQ(rst.dst_port, 50000);
  EXPECT_EQ(rst.tcp_flags, kTcpRst);
  EXPECT_EQ(rst.seq, 5000u);
  EXPECT_EQ(rst.ack, 0u);
  expect_checksums_verify(rst);
  // A reset is never answered, and only TCP is.
  EXPECT_TRUE(build_reset_reply(rst).empty());
  EXPECT_TRUE(build_reset_reply(parse(ipv6_udp_hop_by_hop())).empty());
}

TEST(NetPacket, Ipv4PortUnreachableQuotesTheHeaderAndEightBytes) {
  Bytes data(100, 'q');
  Bytes datagram =
      build_udp_datagram(kGuestMac, kGatewayMac, {IpAddress::v4(10, 0, 2, 15), 40000}, {IpAddress::v4(8, 8, 8, 8), 53},
                         data);
  Parsed original = parse(datagram);
  Bytes frame = build_port_unreachable(original);
  Parsed v = parse(frame);
  EXPECT_EQ(v.dst_mac, kGuestMac);
  EXPECT_EQ(v.src_mac, kGatewayMac);
  EXPECT_EQ(v.src, IpAddress::v4(8, 8, 8, 8));
  EXPECT_EQ(v.dst, IpAddress::v4(10, 0, 2, 15));
  EXPECT_EQ(v.l4, L4::kIcmp);
  EXPECT_EQ(v.icmp_type, 3);
  EXPECT_EQ(v.icmp_code, 3);
  auto icmp = l4_message(v);
  ASSERT_EQ(icmp.size(), 8u + 28u);
  EXPECT_EQ(Bytes(icmp.begin() + 4, icmp.begin() + 8), Bytes(4, 0));
  EXPECT_EQ(Bytes(icmp.begin() + 8, icmp.end()), Bytes(original.ip_packet.begin(), original.ip_packet.begin() + 28));
  expect_checksums_verify(v);

  // With IP options the whole header is quoted, and a short packet whole.
  Bytes options = ipv4_frame(kIpProtoUdp, Bytes{1, 1, 1, 1} + udp_header(12) + Bytes{1, 2, 3, 4});
  options[14] = 0x46;
  Parsed quoted = parse(build_port_unreachable(parse(options)));
  EXPECT_EQ(l4_message(quoted).size(), 8u + 24u + 8u);
  Parsed small = parse(build_port_unreachable(parse(ipv4_frame(kIpProtoUdp, udp_header(8)))));
  EXPECT_EQ(l4_message(small).size(), 8u + 28u);
  Parsed tiny = parse(build_port_unreachable(parse(ipv4_frame(47, Bytes{1, 2}))));
  EXPECT_EQ(l4_message(tiny).size(), 8u + 22u);
  expect_checksums_verify(tiny);
  // Nothing for what is not IP.
  EXPECT_TRUE(build_port_unreachable(parse(ethernet(kEtherTypeArp) + Bytes(28, 0))).empty());
}

TEST(NetPacket, Ipv6PortUnreachableStaysWithinTheMinimumMtu) {
  Parsed original = parse(ipv6_udp_hop_by_hop());
  Parsed v = parse(build_port_unreachable(original));
  EXPECT_EQ(v.dst_mac, kGuestMac);
  EXPECT_EQ(v.src_mac, kGatewayMac);
  EXPECT_EQ(v.src, ip("2001:db8::53"));
  EXPECT_EQ(v.dst, ip("fd00::15"));
  EXPECT_EQ(v.l4, L4::kIcmpv6);
  EXPECT_EQ(v.ip_protocol, kIpProtoIcmpv6);
  EXPECT_EQ(v.icmp_type, 1);
  EXPECT_EQ(v.icmp_code, 4);
  auto icmp = l4_message(v);
  EXPECT_EQ(Bytes(icmp.begin() + 8, icmp.end()), Bytes(original.ip_packet.begin(), original.ip_packet.end()));
  expect_checksums_verify(v);

  // A large packet is quoted up to 1280 bytes of answer.
  Bytes data(2000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i);
  Parsed large =
      parse(build_udp_datagram(kGuestMac, kGatewayMac, {ip("fd00::15"), 40000}, {ip("2001:db8::9"), 9}, data));
  Bytes frame = build_port_unreachable(large);
  EXPECT_EQ(frame.size(), 14u + 1280u);
  Parsed capped = parse(frame);
  EXPECT_EQ(capped.ip_packet.size(), 1280u);
  auto quote = l4_message(capped).subspan(8);
  EXPECT_EQ(Bytes(quote.begin(), quote.end()), Bytes(large.ip_packet.begin(), large.ip_packet.begin() + 1232));
  expect_checksums_verify(capped);
}

TEST(NetPacket, InternetChecksum) {
  // RFC 1071 2.(1)'s example: the sum is 0xddf2.
  const Bytes rfc = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(internet_checksum(rfc), 0x220d);
  // Continued from the first half's unfolded sum.
  EXPECT_EQ(internet_checksum(std::span(rfc).subspan(4), 0x0001 + 0xf203), 0x220d);
  // An odd byte is padded with zero.
  EXPECT_EQ(internet_checksum(Bytes{0x01}), 0xfeff);
  EXPECT_EQ(internet_checksum({}), 0xffff);
  // A large starting sum does not overflow: 0xffffffff and 0xffff are both
  // ones' complement zero.
  EXPECT_EQ(internet_checksum(Bytes{0xff, 0xff}, 0xffffffff), 0);
  Bytes ones(65536, 0xff);
  EXPECT_EQ(internet_checksum(ones, 0xffffffff), 0);
}


// A rewritten segment is byte for byte the one built with the new endpoint
// in the first place: addresses, ports and both checksums.
TEST(NetPacket, RewritingAnEndpointKeepsTheChecksumsRight) {
  Bytes payload = {'h', 'e', 'l', 'l', 'o', '!', 0xff};
  struct Case {
    const char *guest, *remote, *replacement;
  } cases[] = {{"10.0.2.15", "93.184.216.34", "10.0.2.2"},
               {"fd00:6d6f:6174::15", "2606:2800:220:1::1", "fd00:6d6f:6174::2"}};
  for (const auto& c : cases) {
    Endpoint guest{*IpAddress::parse(c.guest), 40000}, remote{*IpAddress::parse(c.remote), 443};
    Endpoint replacement{*IpAddress::parse(c.replacement), 39117};
    for (bool source : {false, true}) {
      const Endpoint& src = source ? remote : guest;
      const Endpoint& dst = source ? guest : remote;
      Bytes frame = build_tcp_segment(kGuestMac, kGatewayMac, src, dst, 123456789, 987654321,
                                      kTcpAck | kTcpPsh, 8192, payload);
      auto view = parse_frame(frame);
      ASSERT_TRUE(view.ok());
      rewrite_tcp_endpoint(frame, *view, source, replacement);
      Bytes expected = build_tcp_segment(kGuestMac, kGatewayMac, source ? replacement : src,
                                         source ? dst : replacement, 123456789, 987654321, kTcpAck | kTcpPsh, 8192,
                                         payload);
      EXPECT_EQ(frame, expected) << c.remote << (source ? " as the source" : " as the destination");
    }
  }
}

}  // namespace
}  // namespace moat::net
