// Network policy (src/net): rule parsing with exact errors, address groups
// judged by where an address really leads, first-match decisions, domain
// rules bound to the resolver's answers, names and rebinding.
#include "net/policy.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

namespace moat::net {
namespace {

IpAddress ip(const char* text) {
  auto a = IpAddress::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddress{});
}

Rule rule(const char* text, bool allow = true) {
  auto r = parse_rule(text, allow);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : Rule{};
}

void expect_bad(const char* text, const std::string& why) {
  auto r = parse_rule(text, true);
  ASSERT_FALSE(r.ok()) << text;
  EXPECT_EQ(r.error().code, EINVAL);
  EXPECT_EQ(r.error().message, "bad rule \"" + std::string(text) + "\": " + why);
}

Flow flow(const char* dst, std::uint16_t port, Protocol p = Protocol::kTcp, std::vector<std::string> names = {}) {
  return Flow{ip(dst), port, p, std::move(names)};
}

TEST(NetPolicy, RulesParseAndPrintInTheirNormalForm) {
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"1.2.3.4", "1.2.3.4"},
      {"1.2.3.4:443", "1.2.3.4:443"},
      {"10.0.0.0/8:8000-8100/tcp", "10.0.0.0/8:8000-8100/tcp"},
      {"[::1]", "[::1]"},
      {"[0:0::1]:80/udp", "[::1]:80/udp"},
      {"[fd00::]/8:53", "[fd00::]/8:53"},
      {"[fd00::/8]", "[fd00::]/8"},
      {"Example.COM.", "example.com"},
      {"*.pypi.org:443", "*.pypi.org:443"},
      {"@host:8080", "@host:8080"},
      {"@link-local", "@link-local"},
      {"@public/udp", "@public/udp"},
      {"pkg_1.example-2.com:1-65535", "pkg_1.example-2.com"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(rule(in).to_string(), out) << in;
  Rule r = rule("*.pypi.org:443/tcp", false);
  EXPECT_FALSE(r.allow);
  EXPECT_EQ(r.kind, Rule::TargetKind::kSuffix);
  EXPECT_EQ(r.domain, "pypi.org");
  EXPECT_EQ(r.port_lo, 443);
  EXPECT_EQ(r.port_hi, 443);
  EXPECT_EQ(r.protocol, Protocol::kTcp);
}

TEST(NetPolicy, BadRulesSayWhatIsWrong) {
  expect_bad("", "no target");
  expect_bad("::1", "IPv6 addresses go in brackets, as in [::1]:443");
  expect_bad("[::1", "\"[\" without \"]\"");
  expect_bad("[1.2.3.4]", "only IPv6 addresses go in brackets");
  expect_bad("[::1]x", "unexpected \"x\" after the address");
  expect_bad("300.1.1.1", "\"300.1.1.1\" is not an IP address");
  expect_bad("10.0.0.1/8", "10.0.0.1/8 has bits set past its prefix length");
  expect_bad("10.0.0.0/33", "prefix length \"33\" is not 0 to 32");
  expect_bad("1.2.3.4:0", "port \"0\" is not 1 to 65535");
  expect_bad("1.2.3.4:65536", "port \"65536\" is not 1 to 65535");
  expect_bad("1.2.3.4:", "port \"\" is not 1 to 65535");
  expect_bad("1.2.3.4:90-80", "port range 90-80 is empty");
  expect_bad("1.2.3.4/icmp", "unknown protocol \"icmp\" (tcp or udp)");
  expect_bad("@lan", "unknown group \"@lan\" (@public @private @loopback @link-local @metadata @multicast @host)");
  expect_bad("*", "the only wildcard is a leading \"*.\" (*.example.com)");
  expect_bad("a.*.com", "the only wildcard is a leading \"*.\" (*.example.com)");
  expect_bad("ex ample.com", "\"ex ample.com\" is not an address, a CIDR, a domain or a group");
  expect_bad("-bad.com", "\"-bad.com\" is not an address, a CIDR, a domain or a group");
  expect_bad("a..b", "\"a..b\" is not an address, a CIDR, a domain or a group");
  auto long_rule = parse_rule(std::string(600, 'a'), true);
  ASSERT_FALSE(long_rule.ok());
  EXPECT_EQ(long_rule.error().message, "bad rule: longer than 512 bytes");
  EXPECT_EQ(parse_net_mode("open").error().message, "--net open: expected none, public or all");
}

TEST(NetPolicy, AddressGroupsFollowWhereAnAddressLeads) {
  EXPECT_TRUE(is_public(ip("8.8.8.8")));
  EXPECT_TRUE(is_public(ip("2606:4700::1111")));
  EXPECT_EQ(address_groups(ip("127.0.0.53")), kGroupLoopback);
  EXPECT_EQ(address_groups(ip("::1")), kGroupLoopback);
  EXPECT_EQ(address_groups(ip("172.31.255.255")), kGroupPrivate);
  EXPECT_EQ(address_groups(ip("100.64.0.1")), kGroupPrivate);
  EXPECT_EQ(address_groups(ip("fd12::1")), kGroupPrivate);
  EXPECT_EQ(address_groups(ip("169.254.169.254")), kGroupLinkLocal | kGroupMetadata);
  EXPECT_EQ(address_groups(ip("fd00:ec2::254")), kGroupPrivate | kGroupMetadata);
  EXPECT_EQ(address_groups(ip("fe80::1")), kGroupLinkLocal);
  EXPECT_EQ(address_groups(ip("239.1.1.1")), kGroupMulticast);
  EXPECT_EQ(address_groups(ip("0.0.0.0")), kGroupReserved);
  EXPECT_EQ(address_groups(ip("::")), kGroupReserved);
  EXPECT_EQ(address_groups(ip("192.0.2.7")), kGroupReserved);
  // IPv6 forms of IPv4 addresses are what they lead to.
  EXPECT_EQ(address_groups(ip("::ffff:127.0.0.1")), kGroupLoopback);
  EXPECT_EQ(address_groups(ip("::ffff:10.1.2.3")), kGroupPrivate);
  EXPECT_EQ(address_groups(ip("64:ff9b::a9fe:a9fe")), kGroupLinkLocal | kGroupMetadata);
  EXPECT_EQ(address_groups(ip("2002:7f00:1::")), kGroupLoopback);
  EXPECT_EQ(address_groups(ip("::192.168.1.1")), kGroupPrivate);
  EXPECT_TRUE(is_public(ip("::ffff:8.8.8.8")));
}

TEST(NetPolicy, PublicModeRefusesEverythingButThePublicInternet) {
  Policy p(NetMode::kPublic, {}, {ip("10.0.2.2")});
  EXPECT_TRUE(p.decide(flow("93.184.216.34", 443)).allowed);
  for (const char* dst : {"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                          "224.0.0.1", "255.255.255.255", "0.0.0.0", "::1", "fe80::1", "fd00::1", "ff02::1",
                          "::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:c0a8:101::"}) {
    Verdict v = p.decide(flow(dst, 80));
    EXPECT_FALSE(v.allowed) << dst;
    EXPECT_EQ(v.rule, -1) << dst;
  }
  EXPECT_EQ(p.decide(flow("127.0.0.1", 80)).reason, "--net public: a loopback address");
  EXPECT_EQ(p.decide(flow("169.254.169.254", 80)).reason, "--net public: a metadata address");
  EXPECT_EQ(p.decide(flow("10.0.2.2", 80)).reason, "--net public: the host needs a rule (--allow @host:PORT)");
  EXPECT_FALSE(Policy(NetMode::kNone, {}).decide(flow("8.8.8.8", 53, Protocol::kUdp)).allowed);
  EXPECT_TRUE(Policy(NetMode::kAll, {}).decide(flow("10.0.0.1", 22)).allowed);
}

TEST(NetPolicy, FirstMatchWinsAndPortsAndProtocolsNarrowARule) {
  Policy p(NetMode::kNone, {rule("10.0.0.5:22", false), rule("10.0.0.0/24:1-1024/tcp"), rule("@host:8080")},
           {ip("10.0.2.2")});
  Verdict denied = p.decide(flow("10.0.0.5", 22));
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.rule, 0);
  EXPECT_EQ(denied.reason, "--deny 10.0.0.5:22");
  Verdict allowed = p.decide(flow("10.0.0.5", 80));
  EXPECT_TRUE(allowed.allowed);
  EXPECT_EQ(allowed.reason, "--allow 10.0.0.0/24:1-1024/tcp");
  EXPECT_FALSE(p.decide(flow("10.0.0.5", 80, Protocol::kUdp)).allowed);
  EXPECT_FALSE(p.decide(flow("10.0.0.5", 1025)).allowed);
  EXPECT_TRUE(p.decide(flow("10.0.2.2", 8080)).allowed);
  EXPECT_FALSE(p.decide(flow("10.0.2.2", 8081)).allowed);
}

TEST(NetPolicy, IPv4RulesNeitherOpenIPv6NorLetItThroughADeny) {
  Policy open(NetMode::kNone, {rule("127.0.0.1:8080")});
  EXPECT_TRUE(open.decide(flow("127.0.0.1", 8080)).allowed);
  EXPECT_FALSE(open.decide(flow("::ffff:127.0.0.1", 8080)).allowed);
  EXPECT_FALSE(open.decide(flow("::1", 8080)).allowed);
  Policy closed(NetMode::kAll, {rule("10.9.9.9", false)});
  EXPECT_FALSE(closed.decide(flow("10.9.9.9", 443)).allowed);
  EXPECT_FALSE(closed.decide(flow("::ffff:10.9.9.9", 443)).allowed);
  EXPECT_FALSE(closed.decide(flow("64:ff9b::a09:909", 443)).allowed);
  EXPECT_TRUE(closed.decide(flow("10.9.9.8", 443)).allowed);
  Policy v6(NetMode::kNone, {rule("[::1]:8080")});
  EXPECT_TRUE(v6.decide(flow("::1", 8080)).allowed);
  EXPECT_FALSE(v6.decide(flow("127.0.0.1", 8080)).allowed);
}

TEST(NetPolicy, DomainRulesMatchOnlyTheResolversAnswers) {
  Policy p(NetMode::kNone, {rule("api.example.com:443"), rule("*.pypi.org")});
  // The address this sandbox's resolver gave for the name: allowed.
  EXPECT_TRUE(p.decide(flow("93.184.216.34", 443, Protocol::kTcp, {"api.example.com"})).allowed);
  // The same address without that tie, or on another port: refused.
  EXPECT_FALSE(p.decide(flow("93.184.216.34", 443)).allowed);
  EXPECT_FALSE(p.decide(flow("93.184.216.34", 80, Protocol::kTcp, {"api.example.com"})).allowed);
  // A suffix rule: the apex and subdomains, not look-alikes.
  EXPECT_TRUE(p.decide(flow("151.101.0.223", 443, Protocol::kTcp, {"pypi.org"})).allowed);
  EXPECT_TRUE(p.decide(flow("151.101.0.223", 443, Protocol::kTcp, {"files.pythonhosted.pypi.org"})).allowed);
  EXPECT_FALSE(p.decide(flow("151.101.0.223", 443, Protocol::kTcp, {"notpypi.org"})).allowed);
  EXPECT_FALSE(p.decide(flow("151.101.0.223", 443, Protocol::kTcp, {"pypi.org.evil.com"})).allowed);
}

TEST(NetPolicy, NamesResolveUnlessDeniedOutrightOrTheModeIsNone) {
  Policy p(NetMode::kPublic, {rule("tracker.example.com", false), rule("*.ads.example", false),
                              rule("mail.example.com:25", false), rule("ok.example.com")});
  EXPECT_FALSE(p.decide_name("Tracker.Example.com.").allowed);
  EXPECT_EQ(p.decide_name("tracker.example.com").reason, "--deny tracker.example.com");
  EXPECT_FALSE(p.decide_name("x.ads.example").allowed);
  EXPECT_FALSE(p.decide_name("ads.example").allowed);
  EXPECT_TRUE(p.decide_name("mail.example.com").allowed);  // denied on port 25 only
  EXPECT_TRUE(p.decide_name("anything.org").allowed);
  Policy none(NetMode::kNone, {rule("ok.example.com:443")});
  EXPECT_TRUE(none.decide_name("ok.example.com").allowed);
  EXPECT_FALSE(none.decide_name("other.example.com").allowed);
}

// Tunnels through a declared proxy: an address as a direct connection, a
// name by the domain rules (on that port, TCP) and then the mode.
TEST(NetPolicy, TunnelTargetsAreJudgedByAddressOrByTheDomainRules) {
  Policy p(NetMode::kPublic, {rule("evil.example", false), rule("*.ads.example:443", false),
                              rule("10.1.0.0/16:443"), rule("dns.example:53/udp", false)});
  EXPECT_FALSE(p.decide_tunnel("Evil.Example.", 443).allowed);
  EXPECT_EQ(p.decide_tunnel("evil.example", 443).reason, "--deny evil.example");
  EXPECT_FALSE(p.decide_tunnel("x.ads.example", 443).allowed);
  EXPECT_TRUE(p.decide_tunnel("x.ads.example", 8443).allowed);  // denied on 443 only
  EXPECT_TRUE(p.decide_tunnel("dns.example", 53).allowed);      // a UDP rule says nothing of TCP
  EXPECT_EQ(p.decide_tunnel("api.example.com", 443).reason, "--net public");
  EXPECT_TRUE(p.decide_tunnel("10.1.2.3", 443).allowed);
  EXPECT_FALSE(p.decide_tunnel("10.2.0.1", 443).allowed);  // private, as a direct connection
  EXPECT_FALSE(p.decide_tunnel("169.254.169.254", 80).allowed);
  EXPECT_FALSE(p.decide_tunnel("::ffff:127.0.0.1", 443).allowed);
  EXPECT_TRUE(p.decide_tunnel("93.184.216.34", 443).allowed);
  EXPECT_EQ(p.decide_tunnel("a b", 443).reason, "not an address or a domain name");
  EXPECT_FALSE(p.decide_tunnel("", 443).allowed);
  Policy none(NetMode::kNone, {rule("ok.example.com:443")});
  EXPECT_TRUE(none.decide_tunnel("ok.example.com", 443).allowed);
  EXPECT_FALSE(none.decide_tunnel("ok.example.com", 80).allowed);
  EXPECT_EQ(none.decide_tunnel("other.example.com", 443).reason, "--net none");
}

TEST(NetPolicy, RebindingToAPrivateAddressNeedsARuleThatAllowsIt) {
  Policy p(NetMode::kPublic, {rule("internal.corp"), rule("10.1.0.0/16:443")}, {ip("10.0.2.2")});
  EXPECT_TRUE(p.answer_allowed("example.com", ip("93.184.216.34")));
  EXPECT_FALSE(p.answer_allowed("evil.example", ip("127.0.0.1")));
  EXPECT_FALSE(p.answer_allowed("evil.example", ip("::ffff:192.168.0.1")));
  EXPECT_FALSE(p.answer_allowed("evil.example", ip("10.0.2.2")));
  EXPECT_TRUE(p.answer_allowed("internal.corp", ip("10.20.0.1")));
  EXPECT_TRUE(p.answer_allowed("anything.example", ip("10.1.2.3")));
  EXPECT_FALSE(p.answer_allowed("anything.example", ip("10.2.0.1")));
}

}  // namespace
}  // namespace moat::net
