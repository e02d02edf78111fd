// A sandbox's network options (include/moat/network.h): the -p form, the
// exact errors of validate_network, and when the guest gets a device.
#include "moat/network.h"

#include <gtest/gtest.h>

#include "net/network_settings.h"

#include <cerrno>
#include <string>

#include "net/policy.h"

namespace moat {
namespace {

PublishedPort port(std::string_view text) {
  auto p = parse_published_port(text);
  EXPECT_TRUE(p.ok()) << text << ": " << (p.ok() ? "" : p.error().message);
  return p.ok() ? *p : PublishedPort{};
}

void expect_bad_port(std::string_view text, const std::string& message) {
  auto p = parse_published_port(text);
  ASSERT_FALSE(p.ok()) << text;
  EXPECT_EQ(p.error().code, EINVAL);
  EXPECT_EQ(p.error().message, message);
}

void expect_invalid(const NetworkOptions& o, const std::string& message) {
  auto st = validate_network(o);
  ASSERT_FALSE(st.ok()) << message;
  EXPECT_EQ(st.error().code, EINVAL);
  EXPECT_EQ(st.error().message, message);
}

NetworkOptions with_host(std::string name, std::string address) {
  NetworkOptions o;
  o.hosts.push_back({std::move(name), std::move(address)});
  return o;
}

NetworkOptions with_dns(std::string dns) {
  NetworkOptions o;
  o.dns = std::move(dns);
  return o;
}

TEST(NetworkOptions, PublishedPortsParseWithTheirDefaults) {
  PublishedPort p = port("8080:80");
  EXPECT_EQ(p.host_ip, "127.0.0.1");
  EXPECT_EQ(p.host_port, 8080);
  EXPECT_EQ(p.guest_port, 80);
  EXPECT_FALSE(p.udp);
  EXPECT_EQ(to_string(p), "127.0.0.1:8080:80");

  p = port("0.0.0.0:53:5353/udp");
  EXPECT_EQ(p.host_ip, "0.0.0.0");
  EXPECT_EQ(p.host_port, 53);
  EXPECT_EQ(p.guest_port, 5353);
  EXPECT_TRUE(p.udp);
  EXPECT_EQ(to_string(p), "0.0.0.0:53:5353/udp");

  p = port("[0:0::1]:65535:1/tcp");
  EXPECT_EQ(p.host_ip, "::1");
  EXPECT_EQ(p.host_port, 65535);
  EXPECT_EQ(p.guest_port, 1);
  EXPECT_FALSE(p.udp);
  EXPECT_EQ(to_string(p), "[::1]:65535:1");
  for (const char* text : {"8080:80", "[::1]:8080:80/udp", "10.1.2.3:1:2"}) {
    auto again = parse_published_port(to_string(port(text)));
    ASSERT_TRUE(again.ok()) << text;
    EXPECT_EQ(to_string(*again), to_string(port(text)));
  }
}

TEST(NetworkOptions, BadPublishedPortsSayWhatIsWrong) {
  const std::string form = "expected [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]";
  expect_bad_port("8080", "bad -p \"8080\": " + form);
  expect_bad_port("", "bad -p \"\": " + form);
  expect_bad_port("0:80", "bad -p \"0:80\": port \"0\" is not 1 to 65535");
  expect_bad_port("8080:65536", "bad -p \"8080:65536\": port \"65536\" is not 1 to 65535");
  expect_bad_port("8080:", "bad -p \"8080:\": port \"\" is not 1 to 65535");
  expect_bad_port("http:80", "bad -p \"http:80\": port \"http\" is not 1 to 65535");
  expect_bad_port("8080:80/sctp", "bad -p \"8080:80/sctp\": unknown protocol \"sctp\" (tcp or udp)");
  expect_bad_port("1.2.3:8080:80", "bad -p \"1.2.3:8080:80\": the host IP \"1.2.3\" is not an IPv4 address");
  expect_bad_port(":8080:80", "bad -p \":8080:80\": the host IP \"\" is not an IPv4 address");
  expect_bad_port("::1:8080:80", "bad -p \"::1:8080:80\": IPv6 host addresses go in brackets, as in [::1]:8080:80");
  expect_bad_port("[::1:8080:80", "bad -p \"[::1:8080:80\": \"[\" without \"]\"");
  expect_bad_port("[1.2.3.4]:8080:80",
                  "bad -p \"[1.2.3.4]:8080:80\": \"1.2.3.4\" is not an IPv6 address (only IPv6 goes in brackets)");
  expect_bad_port("[::1]8080:80", "bad -p \"[::1]8080:80\": " + form);
  expect_bad_port("[::1]:8080", "bad -p \"[::1]:8080\": " + form);
}

TEST(NetworkOptions, TheDefaultsAndAFullSetAreValid) {
  EXPECT_TRUE(validate_network({}).ok());
  NetworkOptions o;
  o.mode = NetworkMode::kNone;
  o.rules = {{.allow = true, .rule = "*.pypi.org:443"}, {.allow = false, .rule = "10.0.0.0/8"}};
  o.hosts = {{"db.test", "host-gateway"}, {"Api.Test.", "10.0.0.5"}, {"v6.test", "[fd00::1]"}, {"v6b.test", "::1"}};
  o.dns = "[2606:4700::1111]:53";
  o.ports = {port("8080:80"), port("8080:80/udp"), port("[::1]:8080:80"), port("0.0.0.0:8080:80")};
  o.max_connections = kMaxMaxConnections;
  o.egress_bytes_per_second = 10 << 20;
  auto st = validate_network(o);
  EXPECT_TRUE(st.ok()) << st.error().message;
  for (const char* dns : {"1.1.1.1", "1.1.1.1:5353", "2606:4700::1111", "[2606:4700::1111]"}) {
    auto d = validate_network(with_dns(dns));
    EXPECT_TRUE(d.ok()) << dns << ": " << d.error().message;
  }
}

TEST(NetworkOptions, RuleErrorsAreThePolicyParsersOwn) {
  NetworkOptions o;
  o.rules = {{.allow = true, .rule = "*.pypi.org:443"}, {.allow = false, .rule = "::1"}};
  expect_invalid(o, "bad rule \"::1\": IPv6 addresses go in brackets, as in [::1]:443");
  o.rules = {{.allow = true, .rule = "@lan"}};
  expect_invalid(o, "bad rule \"@lan\": unknown group \"@lan\" (@public @private @loopback @link-local @metadata "
                    "@multicast @host)");
  o.rules = {{.allow = false, .rule = "1.2.3.4:90-80"}};
  expect_invalid(o, "bad rule \"1.2.3.4:90-80\": port range 90-80 is empty");
  o.rules.assign(kMaxNetworkRules + 1, {.allow = true, .rule = "1.2.3.4"});
  expect_invalid(o, "too many network rules: 1025 (at most 1024)");
  o.rules.resize(kMaxNetworkRules);
  EXPECT_TRUE(validate_network(o).ok());
}

TEST(NetworkOptions, BadHostEntriesSayWhatIsWrong) {
  const std::string domain = "is not a domain name (labels of 1 to 63 letters, digits, '-' or '_', at most 253 bytes)";
  expect_invalid(with_host("", "1.2.3.4"), "bad --add-host \":1.2.3.4\": no name before the ':' (NAME:IP)");
  expect_invalid(with_host("db", ""), "bad --add-host \"db:\": no address after the ':' (NAME:IP)");
  expect_invalid(with_host("a b", "1.2.3.4"), "bad --add-host \"a b:1.2.3.4\": the name \"a b\" " + domain);
  expect_invalid(with_host("-db.test", "1.2.3.4"), "bad --add-host \"-db.test:1.2.3.4\": the name \"-db.test\" " + domain);
  expect_invalid(with_host("a..b", "1.2.3.4"), "bad --add-host \"a..b:1.2.3.4\": the name \"a..b\" " + domain);
  expect_invalid(with_host("*.test", "1.2.3.4"), "bad --add-host \"*.test:1.2.3.4\": the name \"*.test\" " + domain);
  std::string long_name = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                          std::string(63, 'd');
  expect_invalid(with_host(long_name, "1.2.3.4"),
                 "bad --add-host \"" + long_name + ":1.2.3.4\": the name \"" + long_name + "\" " + domain);
  expect_invalid(with_host(std::string(64, 'a'), "1.2.3.4"), "bad --add-host \"" + std::string(64, 'a') +
                                                               ":1.2.3.4\": the name \"" + std::string(64, 'a') +
                                                               "\" " + domain);
  expect_invalid(with_host("1.2.3.4", "5.6.7.8"),
                 "bad --add-host \"1.2.3.4:5.6.7.8\": the name \"1.2.3.4\" is an address, not a name");
  expect_invalid(with_host("db", "nope"),
                 "bad --add-host \"db:nope\": the address \"nope\" is not an IPv4 or IPv6 address, nor host-gateway");
  expect_invalid(with_host("db", "[1.2.3.4]"),
                 "bad --add-host \"db:[1.2.3.4]\": the address \"[1.2.3.4]\" is not an IPv4 or IPv6 address, nor "
                 "host-gateway");
  expect_invalid(with_host("db", "fe80::1%eth0"),
                 "bad --add-host \"db:fe80::1%eth0\": the address \"fe80::1%eth0\" is not an IPv4 or IPv6 address, "
                 "nor host-gateway");
}

TEST(NetworkOptions, BadResolversSayWhatIsWrong) {
  expect_invalid(with_dns("dns.google"), "bad --dns \"dns.google\": \"dns.google\" is not an IPv4 or IPv6 address");
  expect_invalid(with_dns("1.1.1.1:0"), "bad --dns \"1.1.1.1:0\": port \"0\" is not 1 to 65535");
  expect_invalid(with_dns("1.1.1.1:99999"), "bad --dns \"1.1.1.1:99999\": port \"99999\" is not 1 to 65535");
  expect_invalid(with_dns("1.1.1.1:"), "bad --dns \"1.1.1.1:\": port \"\" is not 1 to 65535");
  expect_invalid(with_dns("[::1"), "bad --dns \"[::1\": \"[\" without \"]\"");
  expect_invalid(with_dns("[1.1.1.1]:53"),
                 "bad --dns \"[1.1.1.1]:53\": \"1.1.1.1\" is not an IPv6 address (only IPv6 goes in brackets)");
  expect_invalid(with_dns("[::1]53"), "bad --dns \"[::1]53\": unexpected \"53\" after the address");
  expect_invalid(with_dns("[::1]:x"), "bad --dns \"[::1]:x\": port \"x\" is not 1 to 65535");
  expect_invalid(with_dns("fe80::1%eth0"), "bad --dns \"fe80::1%eth0\": \"fe80::1%eth0\" is not an IPv4 or IPv6 address");
}

TEST(NetworkOptions, BadPortsAndLimitsSayWhatIsWrong) {
  NetworkOptions o;
  o.ports = {port("8080:80"), port("8081:80"), port("8080:81/udp"), port("127.0.0.1:8080:81")};
  expect_invalid(o, "bad -p \"127.0.0.1:8080:81\": host port 8080/tcp on 127.0.0.1 is published twice");
  o.ports = {port("[::1]:53:53/udp"), port("[0::1]:53:54/udp")};
  expect_invalid(o, "bad -p \"[::1]:53:54/udp\": host port 53/udp on ::1 is published twice");
  o.ports = {PublishedPort{.host_ip = "[::1]", .host_port = 1, .guest_port = 1}};
  expect_invalid(o, "bad -p \"[[::1]]:1:1\": the host IP \"[::1]\" is not an IPv4 or IPv6 address (no brackets here)");
  o.ports = {PublishedPort{.host_port = 0, .guest_port = 80}};
  expect_invalid(o, "bad -p \"127.0.0.1:0:80\": the host port is 0 (1 to 65535)");
  o.ports = {PublishedPort{.host_port = 80, .guest_port = 0}};
  expect_invalid(o, "bad -p \"127.0.0.1:80:0\": the guest port is 0 (1 to 65535)");
  o.ports.clear();
  o.max_connections = 0;
  expect_invalid(o, "bad --max-connections \"0\": expected 1 to 65536");
  o.max_connections = kMaxMaxConnections + 1;
  expect_invalid(o, "bad --max-connections \"65537\": expected 1 to 65536");
  o.max_connections = 1;
  EXPECT_TRUE(validate_network(o).ok());
  o.mode = static_cast<NetworkMode>(7);
  expect_invalid(o, "network mode 7 is not none, public or all");
}

TEST(NetworkOptions, ModesHaveThePolicyEnginesNames) {
  for (auto mode : {NetworkMode::kNone, NetworkMode::kPublic, NetworkMode::kAll}) {
    std::string name = to_string(mode);
    EXPECT_EQ(name, net::to_string(static_cast<net::NetMode>(mode)));
    auto back = parse_network_mode(name);
    ASSERT_TRUE(back.ok()) << name;
    EXPECT_EQ(*back, mode);
  }
  auto bad = parse_network_mode("open");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, EINVAL);
  EXPECT_EQ(bad.error().message, "bad --net \"open\": expected none, public or all");
  EXPECT_EQ(to_string(NetworkOptions{}.mode), std::string("public"));
}

TEST(NetworkOptions, OnlyASealedSandboxGoesWithoutADevice) {
  NetworkOptions o;
  EXPECT_TRUE(network_needs_device(o));  // public
  o.mode = NetworkMode::kAll;
  EXPECT_TRUE(network_needs_device(o));
  o.mode = NetworkMode::kNone;
  EXPECT_FALSE(network_needs_device(o));
  o.rules = {{.allow = false, .rule = "@public"}};
  o.hosts = {{"db.test", "10.0.0.5"}};
  o.dns = "1.1.1.1";
  EXPECT_FALSE(network_needs_device(o)) << "deny rules, hosts and a resolver open nothing";
  o.rules.push_back({.allow = true, .rule = "*.pypi.org:443"});
  EXPECT_TRUE(network_needs_device(o));
  o.rules.pop_back();
  o.ports = {port("8080:80")};
  EXPECT_TRUE(network_needs_device(o));
  o.ports.clear();
  o.publish_listening = "0.0.0.0";
  EXPECT_TRUE(network_needs_device(o)) << "ports the guest listens on are published through the device";
}

TEST(NetworkOptions, PublishListeningTakesAnAddress) {
  NetworkOptions o;
  for (const char* ok : {"0.0.0.0", "::", "127.0.0.1", "::1"}) {
    o.publish_listening = ok;
    EXPECT_TRUE(validate_network(o).ok()) << ok;
  }
  const std::string why = "expected the host address to publish at, IPv4 or IPv6 without brackets (0.0.0.0, ::, 127.0.0.1)";
  o.publish_listening = "[::]";
  expect_invalid(o, "bad --publish-listening \"[::]\": " + why);
  o.publish_listening = "localhost";
  expect_invalid(o, "bad --publish-listening \"localhost\": " + why);
}

}  // namespace
}  // namespace moat

namespace moat::net {
namespace {

TEST(TlsBypass, PatternsAreNormalized) {
  NetworkOptions o;
  o.tls.enabled = true;
  o.tls.bypass = {"Pinned.Test.", "*.Bank.test"};
  auto s = read_network_settings(o);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->tls.bypass, (std::vector<std::string>{"pinned.test", "*.bank.test"}));
}

TEST(TlsProxy, AddressesAreNormalizedAndBadOnesNamed) {
  NetworkOptions o;
  o.tls.enabled = true;
  o.tls.proxies = {"Proxy.Corp.:3128", "host.moat.internal:8080", "10.0.0.1:3128", "[FD00::1]:3128"};
  auto s = read_network_settings(o);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->tls.proxies, (std::vector<std::string>{"proxy.corp:3128", "host.moat.internal:8080", "10.0.0.1:3128",
                                                      "[fd00::1]:3128"}));
  auto error_of = [](const std::string& proxy) {
    NetworkOptions bad;
    bad.tls.enabled = true;
    bad.tls.proxies = {proxy};
    auto r = read_network_settings(bad);
    EXPECT_FALSE(r.ok()) << proxy;
    return r.ok() ? std::string() : r.error().message;
  };
  EXPECT_EQ(error_of("proxy.corp"),
            "bad --tls-proxy \"proxy.corp\": expected HOST:PORT (proxy.example:3128, host.moat.internal:3128)");
  EXPECT_EQ(error_of("proxy.corp:0"), "bad --tls-proxy \"proxy.corp:0\": port \"0\" is not 1 to 65535");
  EXPECT_EQ(error_of("fd00::1:3128"),
            "bad --tls-proxy \"fd00::1:3128\": the host is not a name or an address ([IPv6] in brackets)");
  EXPECT_EQ(error_of("a b:3128"), "bad --tls-proxy \"a b:3128\": the host is not a name or an address ([IPv6] in brackets)");
  NetworkOptions many;
  many.tls.enabled = true;
  many.tls.proxies.assign(kMaxTlsProxies + 1, "p.test:1");
  auto r = read_network_settings(many);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "bad --tls-proxy \"17 proxies\": at most 16");
}

}  // namespace
}  // namespace moat::net
