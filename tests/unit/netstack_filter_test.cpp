// The network filter (src/netstack/network_filter.h) on crafted guest
// frames: what reaches the stack, what the guest gets back at once, what is
// logged, and its bounds.
#include "netstack/network_filter.h"

#include <gtest/gtest.h>

#include <memory>

#include "net/network_settings.h"

namespace moat::netstack {
namespace {

using Bytes = std::vector<std::uint8_t>;

net::IpAddress ip(const char* text) { return *net::IpAddress::parse(text); }

const net::MacAddress kGuestMac{{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
const net::MacAddress kGatewayMac{{0x52, 0x55, 0x0a, 0x00, 0x02, 0x02}};

struct Harness {
  std::vector<Bytes> to_stack, to_guest;
  // What the stack sends back at once for a frame it is given, as
  // libslirp does from inside slirp_input (an ack, a reset).
  std::function<std::optional<Bytes>(const net::FrameView&)> stack_answer;
  // Whether the filter's intercept sink takes new connections, and those it took.
  bool intercept = false;
  std::vector<NetworkFilter::InterceptRequest> intercepts;
  std::vector<std::string> log;
  std::unique_ptr<Resolver> resolver;
  std::unique_ptr<NetworkFilter> filter;

  explicit Harness(NetworkMode mode, std::vector<NetworkRule> rules = {}, std::uint32_t max_connections = 16,
                   std::vector<std::pair<std::string, std::vector<net::IpAddress>>> hosts = {}) {
    auto policy = *net::read_policy(mode, rules);
    resolver = std::make_unique<Resolver>(
        policy.get(), std::move(hosts), std::nullopt,
        [this](Resolver::ReplyTag tag, Bytes m) { filter->answer_dns(tag, std::move(m)); },
        [this](const std::string& line) { log.push_back(line); });
    filter = std::make_unique<NetworkFilter>(
        NetworkFilter::Sinks{[this](NetworkFilter::Frame f) {
                               to_stack.emplace_back(f.begin(), f.end());
                               if (!stack_answer) return;
                               auto parsed = net::parse_frame(f);
                               if (!parsed) return;
                               if (auto answer = stack_answer(*parsed)) filter->from_stack(*answer);
                             },
                             [this](Bytes f) { to_guest.push_back(std::move(f)); },
                             [this](const std::string& line) { log.push_back(line); },
                             [this](const NetworkFilter::InterceptRequest& r) {
                               if (!intercept) return false;
                               intercepts.push_back(r);
                               return true;
                             }},
        policy, *resolver, max_connections, std::set<std::uint16_t>{});
  }
};

Bytes tcp(const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport, std::uint8_t flags,
          std::uint32_t seq = 1000, std::uint32_t ack = 0, Bytes payload = {}) {
  return net::build_tcp_segment(kGuestMac, kGatewayMac, {ip(src), sport}, {ip(dst), dport}, seq, ack, flags, 65535,
                                payload);
}

Bytes udp(const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport, Bytes payload) {
  return net::build_udp_datagram(kGuestMac, kGatewayMac, {ip(src), sport}, {ip(dst), dport}, payload);
}

// A frame from the stack, which the filter may rewrite; returns it as it
// leaves for the guest.
Bytes feed_stack(NetworkFilter& filter, Bytes frame) {
  filter.from_stack(frame);
  return frame;
}

net::FrameView parse(const Bytes& b) {
  auto f = net::parse_frame(b);
  EXPECT_TRUE(f.ok());
  return f.ok() ? *f : net::FrameView{};
}

TEST(NetstackFilter, DeniedConnectionIsResetAtOnceAndLogged) {
  Harness h(NetworkMode::kPublic);
  h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 8080, net::kTcpSyn));
  EXPECT_TRUE(h.to_stack.empty());
  ASSERT_EQ(h.to_guest.size(), 1u);
  auto rst = parse(h.to_guest[0]);
  EXPECT_EQ(rst.l4, net::L4::kTcp);
  EXPECT_EQ(rst.tcp_flags, net::kTcpRst | net::kTcpAck);
  EXPECT_EQ(rst.ack, 1001u);
  EXPECT_EQ(rst.src.to_string(), "10.0.2.2");
  EXPECT_EQ(rst.dst_port, 40000);
  ASSERT_EQ(h.log.size(), 1u);
  EXPECT_EQ(h.log[0], "network: denied tcp 10.0.2.2:8080: --net public: the host needs a rule (--allow @host:PORT)");
  EXPECT_EQ(h.filter->flows(), 0u);
}

TEST(NetstackFilter, AllowedConnectionPassesAndEndsWithBothFins) {
  Harness h(NetworkMode::kPublic, {{true, "host.moat.internal:8080"}});
  h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 8080, net::kTcpSyn));
  ASSERT_EQ(h.to_stack.size(), 1u);
  EXPECT_TRUE(h.to_guest.empty());
  EXPECT_EQ(h.filter->flows(), 1u);
  // The stack's SYN-ACK, the guest's data and FIN, the stack's FIN.
  feed_stack(*h.filter, net::build_tcp_segment(kGatewayMac, kGuestMac, {ip("10.0.2.2"), 8080}, {ip("10.0.2.15"), 40000},
                                              5000, 1001, net::kTcpSyn | net::kTcpAck, 65535));
  h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 8080, net::kTcpAck | net::kTcpFin, 1001, 5001, {'h', 'i'}));
  EXPECT_EQ(h.filter->flows(), 1u);
  feed_stack(*h.filter, net::build_tcp_segment(kGatewayMac, kGuestMac, {ip("10.0.2.2"), 8080}, {ip("10.0.2.15"), 40000},
                                              5001, 1004, net::kTcpFin | net::kTcpAck, 65535));
  EXPECT_EQ(h.filter->flows(), 0u);
  EXPECT_EQ(h.to_stack.size(), 2u);
}

TEST(NetstackFilter, OtherAddressesOfTheLinkAreRefused) {
  Harness h(NetworkMode::kAll);
  h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.9", 22, net::kTcpSyn));
  h.filter->from_guest(tcp("10.0.2.15", 40001, "10.0.2.3", 53, net::kTcpSyn));
  h.filter->from_guest(tcp("fd00:6d6f:6174::15", 40002, "fd00:6d6f:6174::99", 80, net::kTcpSyn));
  EXPECT_TRUE(h.to_stack.empty());
  EXPECT_EQ(h.to_guest.size(), 3u);
  EXPECT_EQ(h.log[0], "network: denied tcp 10.0.2.9:22: no such host on the sandbox's link");
  EXPECT_EQ(h.log[1], "network: denied tcp 10.0.2.3:53: the resolver answers DNS over UDP only");
  EXPECT_EQ(h.log[2], "network: denied tcp [fd00:6d6f:6174::99]:80: no such host on the sandbox's link");
}

TEST(NetstackFilter, SpoofedSourcesFragmentsAndStrayIcmpAreDropped) {
  Harness h(NetworkMode::kAll);
  h.filter->from_guest(tcp("10.0.2.16", 40000, "93.184.216.34", 80, net::kTcpSyn));
  h.filter->from_guest(tcp("fd00:6d6f:6174::16", 40000, "2001:4860::1", 80, net::kTcpSyn));
  Bytes frag = udp("10.0.2.15", 5000, "93.184.216.34", 53, {1, 2, 3});
  frag[14 + 6] |= 0x20;  // more fragments
  frag[14 + 10] = frag[14 + 11] = 0;  // (header checksum no longer matters to the parser)
  h.filter->from_guest(frag);
  h.filter->from_guest(Bytes{1, 2, 3});
  EXPECT_TRUE(h.to_stack.empty());
  EXPECT_TRUE(h.to_guest.empty());
  EXPECT_EQ(h.filter->counters().dropped, 4u);
}

TEST(NetstackFilter, DeniedDatagramGetsPortUnreachable) {
  Harness h(NetworkMode::kPublic);
  h.filter->from_guest(udp("10.0.2.15", 5000, "192.168.1.1", 123, {1, 2, 3}));
  ASSERT_EQ(h.to_guest.size(), 1u);
  auto icmp = parse(h.to_guest[0]);
  EXPECT_EQ(icmp.l4, net::L4::kIcmp);
  EXPECT_EQ(icmp.icmp_type, 3);
  EXPECT_EQ(icmp.icmp_code, 3);
  EXPECT_EQ(h.log.at(0), "network: denied udp 192.168.1.1:123: --net public: a private address");
  // An allowed one opens a flow; multicast goes nowhere, without a word.
  h.filter->from_guest(udp("10.0.2.15", 5000, "93.184.216.34", 123, {1}));
  h.filter->from_guest(udp("10.0.2.15", 5000, "224.0.0.251", 5353, {1}));
  EXPECT_EQ(h.to_stack.size(), 1u);
  EXPECT_EQ(h.filter->flows(), 1u);
  EXPECT_EQ(h.log.size(), 1u);
}

TEST(NetstackFilter, DnsToTheResolverIsAnsweredByTheFilter) {
  Harness h(NetworkMode::kNone, {{true, "db.test:5432"}}, 16, {{"db.test", {ip("10.0.2.2")}}});
  h.filter->from_guest(udp("10.0.2.15", 33333, "10.0.2.3", 53, net::build_dns_query(9, "db.test", net::kDnsTypeA)));
  h.filter->from_guest(udp("10.0.2.15", 33334, "10.0.2.3", 53, net::build_dns_query(10, "x.test", net::kDnsTypeA)));
  EXPECT_TRUE(h.to_stack.empty());
  ASSERT_EQ(h.to_guest.size(), 2u);
  auto a = parse(h.to_guest[0]);
  EXPECT_EQ(a.src.to_string(), "10.0.2.3");
  EXPECT_EQ(a.src_port, 53);
  EXPECT_EQ(a.dst_port, 33333);
  auto q = net::parse_dns_query(net::build_dns_query(9, "db.test", net::kDnsTypeA));
  auto answer = net::parse_dns_response(a.payload, *q);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->addresses.at(0).to_string(), "10.0.2.2");
  auto nx = parse(h.to_guest[1]);
  auto q2 = net::parse_dns_query(net::build_dns_query(10, "x.test", net::kDnsTypeA));
  EXPECT_EQ(net::parse_dns_response(nx.payload, *q2)->rcode, net::kDnsRcodeNxDomain);
  // The address the name resolved to is open on the allowed port only.
  h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 5432, net::kTcpSyn));
  h.filter->from_guest(tcp("10.0.2.15", 40001, "10.0.2.2", 5433, net::kTcpSyn));
  EXPECT_EQ(h.to_stack.size(), 1u);
}

TEST(NetstackFilter, MaxConnectionsRefusesTheRest) {
  Harness h(NetworkMode::kAll, {}, 3);
  for (std::uint16_t port = 40000; port < 40005; ++port)
    h.filter->from_guest(tcp("10.0.2.15", port, "93.184.216.34", 80, net::kTcpSyn));
  EXPECT_EQ(h.to_stack.size(), 3u);
  EXPECT_EQ(h.to_guest.size(), 2u);
  EXPECT_EQ(h.filter->counters().refused_over_limit, 2u);
  EXPECT_EQ(h.log.back(),
            "network: denied tcp 93.184.216.34:80: the sandbox has 3 connections open (--max-connections)");
  // A reset from the guest frees its place.
  h.filter->from_guest(tcp("10.0.2.15", 40000, "93.184.216.34", 80, net::kTcpRst, 1001));
  h.filter->from_guest(tcp("10.0.2.15", 40010, "93.184.216.34", 80, net::kTcpSyn));
  EXPECT_EQ(h.to_stack.size(), 5u);
}

TEST(NetstackFilter, PolicyUpdateClosesFlowsItDenies) {
  Harness h(NetworkMode::kPublic, {{true, "@host:8080"}});
  h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 8080, net::kTcpSyn, 1000));
  feed_stack(*h.filter, net::build_tcp_segment(kGatewayMac, kGuestMac, {ip("10.0.2.2"), 8080}, {ip("10.0.2.15"), 40000},
                                              5000, 1001, net::kTcpSyn | net::kTcpAck, 65535));
  h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 8080, net::kTcpAck, 1001, 5001, {'a', 'b', 'c'}));
  h.filter->from_guest(tcp("10.0.2.15", 40001, "93.184.216.34", 443, net::kTcpSyn));
  ASSERT_EQ(h.filter->flows(), 2u);
  h.to_stack.clear();
  h.filter->set_policy(*net::read_policy(NetworkMode::kPublic, {}));
  EXPECT_EQ(h.filter->flows(), 1u);  // the public one stays
  ASSERT_EQ(h.to_guest.size(), 1u);
  auto to_guest = parse(h.to_guest[0]);
  EXPECT_EQ(to_guest.tcp_flags, net::kTcpRst);
  EXPECT_EQ(to_guest.seq, 5001u);  // what the guest expects next
  ASSERT_EQ(h.to_stack.size(), 1u);
  auto to_stack = parse(h.to_stack[0]);
  EXPECT_EQ(to_stack.tcp_flags, net::kTcpRst);
  EXPECT_EQ(to_stack.seq, 1004u);  // after the guest's three bytes
  EXPECT_EQ(to_stack.src.to_string(), "10.0.2.15");
  EXPECT_EQ(h.log.back(),
            "network: closed tcp 10.0.2.2:8080 after the policy changed: --net public: the host needs a rule "
            "(--allow @host:PORT)");
}

// A TLS ClientHello naming `name` (enough of one for the SNI reader).
Bytes client_hello(const std::string& name) {
  Bytes ext = {0, 0, 0, static_cast<std::uint8_t>(name.size() + 5), 0, static_cast<std::uint8_t>(name.size() + 3), 0,
               0, static_cast<std::uint8_t>(name.size())};
  ext.insert(ext.end(), name.begin(), name.end());
  Bytes body = {3, 3};
  body.insert(body.end(), 32, 1);
  body.insert(body.end(), {0, 0, 2, 0x13, 0x01, 1, 0, 0, static_cast<std::uint8_t>(ext.size())});
  body.insert(body.end(), ext.begin(), ext.end());
  Bytes rec = {22, 3, 1, 0, static_cast<std::uint8_t>(body.size() + 4), 1, 0, 0, static_cast<std::uint8_t>(body.size())};
  rec.insert(rec.end(), body.begin(), body.end());
  return rec;
}

TEST(NetstackFilter, ADomainRuleConnectionMustNameAnAllowedServer) {
  Harness h(NetworkMode::kNone, {{true, "api.test:443"}}, 16, {{"api.test", {ip("93.184.216.34")}}});
  auto open = [&](std::uint16_t port) {
    h.filter->from_guest(tcp("10.0.2.15", port, "93.184.216.34", 443, net::kTcpSyn, 1000));
    feed_stack(*h.filter, net::build_tcp_segment(kGatewayMac, kGuestMac, {ip("93.184.216.34"), 443},
                                                {ip("10.0.2.15"), port}, 7000, 1001, net::kTcpSyn | net::kTcpAck,
                                                65535));
    h.filter->from_guest(tcp("10.0.2.15", port, "93.184.216.34", 443, net::kTcpAck, 1001, 7001));
  };
  open(40000);
  h.filter->from_guest(tcp("10.0.2.15", 40000, "93.184.216.34", 443, net::kTcpAck | net::kTcpPsh, 1001, 7001,
                           client_hello("api.test")));
  EXPECT_EQ(h.to_stack.size(), 3u);
  EXPECT_TRUE(h.to_guest.empty());

  open(40001);
  h.to_stack.clear();
  h.filter->from_guest(tcp("10.0.2.15", 40001, "93.184.216.34", 443, net::kTcpAck | net::kTcpPsh, 1001, 7001,
                           client_hello("evil.test")));
  ASSERT_EQ(h.to_stack.size(), 1u);  // no ClientHello, only the reset
  auto to_stack = parse(h.to_stack[0]);
  EXPECT_EQ(to_stack.tcp_flags, net::kTcpRst);
  EXPECT_EQ(to_stack.seq, 1001u);
  ASSERT_EQ(h.to_guest.size(), 1u);
  auto to_guest = parse(h.to_guest[0]);
  EXPECT_EQ(to_guest.tcp_flags, net::kTcpRst);
  EXPECT_EQ(to_guest.seq, 7001u);
  EXPECT_EQ(h.log.back(),
            "network: denied tcp 93.184.216.34:443: its TLS server name \"evil.test\" is not allowed (--net none)");
  EXPECT_EQ(h.filter->flows(), 1u);
}

TEST(NetstackFilter, EgressRateDropsDataPastTheBucket) {
  Harness h(NetworkMode::kAll);
  h.filter->set_egress_limit(100000);  // a bucket of 64 KiB (its floor)
  h.filter->from_guest(tcp("10.0.2.15", 40000, "93.184.216.34", 80, net::kTcpSyn, 1000));
  Bytes chunk(1400, 'x');
  std::uint32_t seq = 1001;
  for (int i = 0; i < 60; ++i, seq += 1400)
    h.filter->from_guest(tcp("10.0.2.15", 40000, "93.184.216.34", 80, net::kTcpAck, seq, 1, chunk));
  // The SYN and 46 full segments (64 KiB) pass at once; the rest is dropped
  // for TCP to send again later.
  EXPECT_EQ(h.to_stack.size(), 1u + 46u);
  EXPECT_EQ(h.filter->counters().over_rate, 14u);
  // Segments without data (acks) always pass.
  h.filter->from_guest(tcp("10.0.2.15", 40000, "93.184.216.34", 80, net::kTcpAck, seq, 1));
  EXPECT_EQ(h.to_stack.size(), 48u);
}

}  // namespace
}  // namespace moat::netstack

namespace moat::netstack {
namespace {

// A frame from the stack to the guest of the connection 10.0.2.15:40000 -
// 10.0.2.2:8080.
Bytes from_stack_tcp(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, std::uint16_t window, Bytes payload = {}) {
  return net::build_tcp_segment(kGatewayMac, kGuestMac, {ip("10.0.2.2"), 8080}, {ip("10.0.2.15"), 40000}, seq, ack,
                                flags, window, payload);
}

// A connection the remote closes first: the guest sends "GET" (seq 1001 to
// 1004), the stack answers with "ok" and its FIN (seq 5001 to 5003, FIN
// 5003), the guest acks both and sends its FIN (seq 1004), and the stack
// acks that at once with `final_window` (its buffer is 8192 bytes).
struct ClosedByRemote {
  Harness h{NetworkMode::kPublic, {{true, "host.moat.internal:8080"}}};
  explicit ClosedByRemote(std::uint16_t final_window, std::uint32_t guest_ack_of_fin = 5004) {
    h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 8080, net::kTcpSyn));
    feed_stack(*h.filter, from_stack_tcp(net::kTcpSyn | net::kTcpAck, 5000, 1001, 8192));
    h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 8080, net::kTcpAck, 1001, 5001, {'G', 'E', 'T'}));
    feed_stack(*h.filter, from_stack_tcp(net::kTcpAck | net::kTcpFin, 5001, 1004, 8192, {'o', 'k'}));
    h.stack_answer = [final_window](const net::FrameView& f) -> std::optional<Bytes> {
      if (!(f.tcp_flags & net::kTcpFin)) return std::nullopt;
      return from_stack_tcp(net::kTcpAck, 5004, f.seq + 1, final_window);
    };
    h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 8080, net::kTcpAck | net::kTcpFin, 1004, guest_ack_of_fin));
  }
};

TEST(NetstackFilterTimeWait, TheStacksTimeWaitEndsOnceItAckedTheGuestsFinWithAnEmptyBuffer) {
  ClosedByRemote c(8192);
  EXPECT_EQ(c.h.filter->flows(), 0u);
  EXPECT_EQ(c.h.filter->counters().time_waits_released, 1u);
  ASSERT_EQ(c.h.to_stack.size(), 4u);  // SYN, GET, FIN, the reset
  auto rst = parse(c.h.to_stack.back());
  EXPECT_EQ(rst.tcp_flags, net::kTcpRst);
  EXPECT_EQ(rst.seq, 1005u);  // in the stack's window: right after the FIN
  EXPECT_EQ(rst.src.to_string(), "10.0.2.15");
  EXPECT_EQ(rst.src_port, 40000);
  EXPECT_EQ(rst.dst.to_string(), "10.0.2.2");
  EXPECT_EQ(rst.dst_port, 8080);
  EXPECT_TRUE(c.h.to_guest.empty()) << "the guest's side is closed and hears nothing";
}

TEST(NetstackFilterTimeWait, DataStillOwedToTheHostKeepsTheTimeWait) {
  // A smaller window: some of the guest's bytes wait in the stack for the
  // host socket, and the stack writes them out during its TIME_WAIT.
  ClosedByRemote c(8189);
  EXPECT_EQ(c.h.filter->counters().time_waits_released, 0u);
  EXPECT_EQ(c.h.to_stack.size(), 3u);
}

TEST(NetstackFilterTimeWait, AGuestFinThatDidNotAckTheStacksFinKeepsIt) {
  // Simultaneous close: the stack is in CLOSING, not TIME_WAIT.
  ClosedByRemote c(8192, 5003);
  EXPECT_EQ(c.h.filter->counters().time_waits_released, 0u);
}

TEST(NetstackFilterTimeWait, AGuestThatClosesFirstHoldsTheTimeWaitItself) {
  Harness h(NetworkMode::kPublic, {{true, "host.moat.internal:8080"}});
  h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 8080, net::kTcpSyn));
  feed_stack(*h.filter, from_stack_tcp(net::kTcpSyn | net::kTcpAck, 5000, 1001, 8192));
  h.filter->from_guest(tcp("10.0.2.15", 40000, "10.0.2.2", 8080, net::kTcpAck | net::kTcpFin, 1001, 5001));
  feed_stack(*h.filter, from_stack_tcp(net::kTcpAck | net::kTcpFin, 5001, 1002, 8192));
  EXPECT_EQ(h.filter->flows(), 0u);
  EXPECT_EQ(h.filter->counters().time_waits_released, 0u);
  EXPECT_EQ(h.to_stack.size(), 2u);
}

}  // namespace
}  // namespace moat::netstack

namespace moat::netstack {
namespace {

// TLS interception's redirect (docs/tls.md): the SYN is held until the way
// is ready, then the connection runs between the guest and the listener
// with every frame rewritten, and the guest never sees the listener.
TEST(NetstackFilterIntercept, AHeldConnectionRunsToTheListenerAndLooksUnchangedToTheGuest) {
  Harness h(NetworkMode::kPublic, {{true, "93.184.216.34:443"}});
  h.intercept = true;
  Bytes syn = tcp("10.0.2.15", 40000, "93.184.216.34", 443, net::kTcpSyn);
  h.filter->from_guest(syn);
  h.filter->from_guest(syn);  // resent while the way is made
  EXPECT_TRUE(h.to_stack.empty());
  ASSERT_EQ(h.intercepts.size(), 1u);
  EXPECT_EQ(h.intercepts[0].remote.address.to_string(), "93.184.216.34");
  EXPECT_EQ(h.intercepts[0].remote.port, 443);
  EXPECT_EQ(h.intercepts[0].guest.port, 40000);

  net::Endpoint listener{ip("10.0.2.2"), 38001};
  ASSERT_TRUE(h.filter->intercept_ready(h.intercepts[0].key, listener));
  ASSERT_EQ(h.to_stack.size(), 1u);
  EXPECT_EQ(h.to_stack[0], tcp("10.0.2.15", 40000, "10.0.2.2", 38001, net::kTcpSyn));

  // The stack answers from the listener; the guest hears from the server.
  Bytes synack = feed_stack(*h.filter, net::build_tcp_segment(kGatewayMac, kGuestMac, listener,
                                                                {ip("10.0.2.15"), 40000}, 5000, 1001,
                                                                net::kTcpSyn | net::kTcpAck, 8192));
  EXPECT_EQ(synack, net::build_tcp_segment(kGatewayMac, kGuestMac, {ip("93.184.216.34"), 443},
                                           {ip("10.0.2.15"), 40000}, 5000, 1001, net::kTcpSyn | net::kTcpAck, 8192));
  h.filter->from_guest(tcp("10.0.2.15", 40000, "93.184.216.34", 443, net::kTcpAck, 1001, 5001, {'h', 'i'}));
  ASSERT_EQ(h.to_stack.size(), 2u);
  EXPECT_EQ(h.to_stack[1], tcp("10.0.2.15", 40000, "10.0.2.2", 38001, net::kTcpAck, 1001, 5001, {'h', 'i'}));

  // A policy that closes it resets the stack's side where the stack has it.
  h.filter->set_policy(*net::read_policy(NetworkMode::kNone, {}));
  EXPECT_EQ(h.filter->flows(), 0u);
  ASSERT_EQ(h.to_stack.size(), 3u);
  auto rst = parse(h.to_stack[2]);
  EXPECT_EQ(rst.tcp_flags, net::kTcpRst);
  EXPECT_EQ(rst.dst.to_string(), "10.0.2.2");
  EXPECT_EQ(rst.dst_port, 38001);
  // And the listener's address is no flow's any more.
  Bytes late = feed_stack(*h.filter, net::build_tcp_segment(kGatewayMac, kGuestMac, listener,
                                                              {ip("10.0.2.15"), 40000}, 5001, 1003, net::kTcpAck, 8192));
  EXPECT_EQ(parse(late).src_port, 38001) << "not rewritten";
}

TEST(NetstackFilterIntercept, AFailedWayResetsTheGuestAndSaysWhy) {
  Harness h(NetworkMode::kPublic, {{true, "93.184.216.34:443"}});
  h.intercept = true;
  h.filter->from_guest(tcp("10.0.2.15", 40000, "93.184.216.34", 443, net::kTcpSyn));
  ASSERT_EQ(h.intercepts.size(), 1u);
  h.filter->intercept_failed(h.intercepts[0].key, ECONNREFUSED);
  EXPECT_TRUE(h.to_stack.empty());
  ASSERT_EQ(h.to_guest.size(), 1u);
  auto rst = parse(h.to_guest[0]);
  EXPECT_EQ(rst.tcp_flags, net::kTcpRst | net::kTcpAck);
  EXPECT_EQ(rst.ack, 1001u);
  EXPECT_EQ(rst.src.to_string(), "93.184.216.34");
  ASSERT_EQ(h.log.size(), 1u);
  EXPECT_EQ(h.log[0], "network: tcp 93.184.216.34:443: Connection refused");
  EXPECT_EQ(h.filter->flows(), 0u);
  EXPECT_FALSE(h.filter->intercept_ready(h.intercepts[0].key, {ip("10.0.2.2"), 38001})) << "gone";
}

TEST(NetstackFilterIntercept, QuicToAnInterceptedPortIsRefusedAtOnce) {
  Harness h(NetworkMode::kAll);
  h.filter->block_quic({443});
  h.filter->from_guest(udp("10.0.2.15", 50000, "93.184.216.34", 443, {1, 2, 3}));
  EXPECT_TRUE(h.to_stack.empty());
  ASSERT_EQ(h.to_guest.size(), 1u);
  EXPECT_EQ(parse(h.to_guest[0]).l4, net::L4::kIcmp);
  ASSERT_EQ(h.log.size(), 1u);
  EXPECT_EQ(h.log[0], "network: denied udp 93.184.216.34:443: UDP to a port whose TLS is intercepted (QUIC; clients "
                      "fall back to TCP)");
  h.filter->from_guest(udp("10.0.2.15", 50000, "93.184.216.34", 8443, {1, 2, 3}));
  EXPECT_EQ(h.to_stack.size(), 1u) << "other ports pass";
}

TEST(NetstackFilterIntercept, AGuestThatGivesUpWhileHeldIsForgotten) {
  Harness h(NetworkMode::kPublic, {{true, "93.184.216.34:443"}});
  h.intercept = true;
  h.filter->from_guest(tcp("10.0.2.15", 40000, "93.184.216.34", 443, net::kTcpSyn));
  h.filter->from_guest(tcp("10.0.2.15", 40000, "93.184.216.34", 443, net::kTcpRst, 1001));
  EXPECT_EQ(h.filter->flows(), 0u);
  EXPECT_FALSE(h.filter->intercept_ready(h.intercepts[0].key, {ip("10.0.2.2"), 38001}));
  EXPECT_TRUE(h.to_stack.empty());
}

}  // namespace
}  // namespace moat::netstack
