// The sandbox's resolver (src/netstack/resolver.h): fixed names, names the
// policy denies, questions forwarded to a real UDP server on loopback, the
// rebinding check, pins, and its bounds.
#include "netstack/resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>

#include "net/network_settings.h"

namespace moat::netstack {
namespace {

using Bytes = std::vector<std::uint8_t>;

net::IpAddress ip(const char* text) { return *net::IpAddress::parse(text); }

std::shared_ptr<const net::Policy> policy(NetworkMode mode, std::vector<NetworkRule> rules = {}) {
  auto p = net::read_policy(mode, rules);
  EXPECT_TRUE(p.ok());
  return *p;
}

// A UDP socket on 127.0.0.1 playing the upstream resolver.
struct FakeUpstream {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  std::uint16_t port = 0;
  sockaddr_in peer{};
  FakeUpstream() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~FakeUpstream() { ::close(fd); }
  // The next question it received.
  net::DnsQuery receive() {
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 5000), 1);
    std::uint8_t buf[512];
    socklen_t len = sizeof peer;
    ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &len);
    auto q = net::parse_dns_query({buf, static_cast<std::size_t>(n > 0 ? n : 0)});
    EXPECT_TRUE(q.ok());
    return q.ok() ? *q : net::DnsQuery{};
  }
  void answer(const Bytes& message) {
    ::sendto(fd, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&peer), sizeof peer);
  }
};

struct Harness {
  std::shared_ptr<const net::Policy> pol;
  std::map<Resolver::ReplyTag, Bytes> answers;
  std::vector<std::string> log;
  std::unique_ptr<Resolver> resolver;

  explicit Harness(std::shared_ptr<const net::Policy> p, std::optional<UpstreamResolver> upstream = std::nullopt,
                   std::vector<std::pair<std::string, std::vector<net::IpAddress>>> hosts = {})
      : pol(std::move(p)) {
    resolver = std::make_unique<Resolver>(
        pol.get(), std::move(hosts), upstream,
        [this](Resolver::ReplyTag tag, Bytes m) { answers[tag] = std::move(m); },
        [this](const std::string& line) { log.push_back(line); });
  }
  net::DnsAnswer ask(const std::string& name, std::uint16_t type, Resolver::ReplyTag tag) {
    Bytes q = net::build_dns_query(0x4242, name, type);
    EXPECT_TRUE(resolver->on_query(q, tag));
    return read(name, type, tag);
  }
  net::DnsAnswer read(const std::string& name, std::uint16_t type, Resolver::ReplyTag tag) {
    auto it = answers.find(tag);
    if (it == answers.end()) return net::DnsAnswer{255, {}, {}, 0};
    // Read as the answer to the question with the answer's own id (the
    // guest's, which each test chose).
    std::uint16_t id = it->second.size() >= 2 ? static_cast<std::uint16_t>(it->second[0] << 8 | it->second[1]) : 0;
    auto q = net::parse_dns_query(net::build_dns_query(id, name, type));
    auto a = net::parse_dns_response(it->second, *q);
    EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message);
    return a.ok() ? *a : net::DnsAnswer{};
  }
  void pump() {
    pollfd p{resolver->upstream_fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    resolver->on_upstream_readable();
  }
};

TEST(NetstackResolver, HostResolverFromResolvConf) {
  auto u = upstream_from_resolv_conf("# comment\nsearch example\nnameserver fe80::1%eth0\nnameserver\t10.255.255.53\n");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->address.to_string(), "10.255.255.53");
  EXPECT_EQ(u->port, 53);
  EXPECT_FALSE(upstream_from_resolv_conf("nameservers 1.2.3.4\n# nameserver 1.1.1.1\n").has_value());
  EXPECT_EQ(upstream_from_resolv_conf("nameserver ::1 # local\n")->address.to_string(), "::1");
}

TEST(NetstackResolver, HostAliasAndAddHostAnswerWithoutUpstream) {
  Harness h(policy(NetworkMode::kPublic), std::nullopt, {{"db.test", {ip("192.0.2.7"), ip("2001:db8::7")}}});
  auto a = h.ask("host.moat.internal", net::kDnsTypeA, 1);
  ASSERT_EQ(a.addresses.size(), 1u);
  EXPECT_EQ(a.addresses[0].to_string(), "10.0.2.2");
  // IPv4 only: clients that take the first address would try the host's
  // ::1 first, where few servers listen.
  auto aaaa = h.ask("HOST.moat.internal.", net::kDnsTypeAaaa, 2);
  EXPECT_EQ(aaaa.rcode, 0);
  EXPECT_TRUE(aaaa.addresses.empty());
  EXPECT_EQ(h.ask("db.test", net::kDnsTypeAaaa, 3).addresses.at(0).to_string(), "2001:db8::7");
  EXPECT_EQ(h.resolver->names_for(ip("192.0.2.7")), std::vector<std::string>{"db.test"});
  EXPECT_EQ(h.resolver->names_for(ip("10.0.2.2")), std::vector<std::string>{"host.moat.internal"});
  // Without an upstream, other names fail rather than hang.
  EXPECT_EQ(h.ask("example.com", net::kDnsTypeA, 4).rcode, net::kDnsRcodeServFail);
  // Record types other than addresses: an empty answer.
  auto txt = h.ask("db.test", 16, 5);
  EXPECT_EQ(txt.rcode, 0);
  EXPECT_TRUE(txt.addresses.empty());
}

TEST(NetstackResolver, DeniedNamesGetNxdomainAndAreLogged) {
  Harness h(policy(NetworkMode::kNone, {{true, "*.allowed.test"}}), std::nullopt,
            {{"x.allowed.test", {ip("192.0.2.1")}}, {"other.test", {ip("192.0.2.2")}}});
  EXPECT_EQ(h.ask("x.allowed.test", net::kDnsTypeA, 1).addresses.size(), 1u);
  EXPECT_EQ(h.ask("other.test", net::kDnsTypeA, 2).rcode, net::kDnsRcodeNxDomain);
  ASSERT_EQ(h.log.size(), 1u);
  EXPECT_EQ(h.log[0], "dns: other.test denied (--net none)");
  // Not a question: dropped, reported as such.
  EXPECT_FALSE(h.resolver->on_query(Bytes{1, 2, 3}, 3));
}

TEST(NetstackResolver, ForwardsPinsAndDropsRebinding) {
  FakeUpstream up;
  Harness h(policy(NetworkMode::kPublic), UpstreamResolver{ip("127.0.0.1"), up.port});
  ASSERT_TRUE(h.resolver->on_query(net::build_dns_query(7, "pub.example", net::kDnsTypeA), 1));
  EXPECT_EQ(h.resolver->pending(), 1u);
  auto q = up.receive();
  EXPECT_EQ(q.name, "pub.example");
  EXPECT_NE(q.id, 7);  // a fresh id, not the guest's
  up.answer(net::build_dns_answer(q, {ip("93.184.216.34")}, 3600));
  h.pump();
  auto a = h.read("pub.example", net::kDnsTypeA, 1);
  ASSERT_EQ(a.addresses.size(), 1u);
  EXPECT_EQ(a.addresses[0].to_string(), "93.184.216.34");
  EXPECT_EQ(a.ttl, Resolver::kMaxAnswerTtl);  // capped: the pin outlives what the guest caches
  EXPECT_EQ(h.resolver->names_for(ip("93.184.216.34")), std::vector<std::string>{"pub.example"});

  // A public name answered with loopback: dropped, NXDOMAIN.
  ASSERT_TRUE(h.resolver->on_query(net::build_dns_query(8, "rebind.example", net::kDnsTypeA), 2));
  auto q2 = up.receive();
  up.answer(net::build_dns_answer(q2, {ip("127.0.0.1")}, 60));
  h.pump();
  EXPECT_EQ(h.read("rebind.example", net::kDnsTypeA, 2).rcode, net::kDnsRcodeNxDomain);
  EXPECT_TRUE(h.resolver->names_for(ip("127.0.0.1")).empty());
  EXPECT_EQ(h.log.back(),
            "dns: dropped 127.0.0.1 from the answer for rebind.example (a public name may not resolve to a "
            "non-public address without a rule)");
  EXPECT_EQ(h.resolver->pending(), 0u);
}

TEST(NetstackResolver, PendingQuestionsAreBoundedAndTimeOut) {
  FakeUpstream up;
  Harness h(policy(NetworkMode::kPublic), UpstreamResolver{ip("127.0.0.1"), up.port});
  for (std::size_t i = 0; i < Resolver::kMaxPending + 10; ++i)
    ASSERT_TRUE(h.resolver->on_query(net::build_dns_query(1, "n" + std::to_string(i) + ".example", net::kDnsTypeA),
                                     i + 1));
  EXPECT_EQ(h.resolver->pending(), Resolver::kMaxPending);
  // The ten past the bound were answered SERVFAIL at once.
  EXPECT_EQ(h.answers.size(), 10u);
  EXPECT_EQ(h.read("n" + std::to_string(Resolver::kMaxPending) + ".example", net::kDnsTypeA,
                   Resolver::kMaxPending + 1)
                .rcode,
            net::kDnsRcodeServFail);
  h.resolver->expire(Resolver::Clock::now() + Resolver::kUpstreamTimeout + std::chrono::seconds(1));
  EXPECT_EQ(h.resolver->pending(), 0u);
  EXPECT_EQ(h.answers.size(), Resolver::kMaxPending + 10);
}

TEST(NetstackResolver, AnswersOfOtherIdsOrQuestionsAreIgnored) {
  FakeUpstream up;
  Harness h(policy(NetworkMode::kPublic), UpstreamResolver{ip("127.0.0.1"), up.port});
  ASSERT_TRUE(h.resolver->on_query(net::build_dns_query(7, "pub.example", net::kDnsTypeA), 1));
  auto q = up.receive();
  net::DnsQuery wrong = q;
  wrong.id = static_cast<std::uint16_t>(q.id + 1);
  up.answer(net::build_dns_answer(wrong, {ip("93.184.216.34")}, 60));
  h.pump();
  EXPECT_TRUE(h.answers.empty());
  EXPECT_EQ(h.resolver->pending(), 1u);
}

}  // namespace
}  // namespace moat::netstack
