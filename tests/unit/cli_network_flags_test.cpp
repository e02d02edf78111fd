// The network flags of the CLI (src/cli/network_flags.h), parsed by CLI11 as
// `moat create` parses them: --allow and --deny keep the order typed.
#include "cli/network_flags.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

namespace moat::cli {
namespace {

// Parses `args` after "moat create" with the network flags (and another
// repeatable option between them) and returns the flags.
NetworkFlags parse(const std::vector<std::string>& args, bool policy_only = false) {
  CLI::App app{"test"};
  CLI::App* create = app.add_subcommand("create");
  std::vector<std::string> labels;
  create->add_option("--label", labels)->allow_extra_args(false);
  NetworkFlags f;
  add_network_flags(create, f, policy_only);
  std::vector<std::string> words = {"moat", "create"};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return f;
}

std::vector<std::string> rules_of(const NetworkFlags& f) {
  std::vector<std::string> out;
  for (const auto& r : f.rules) out.push_back((r.allow ? "allow " : "deny ") + r.rule);
  return out;
}

TEST(CliNetworkFlags, AllowAndDenyKeepTheOrderTyped) {
  auto f = parse({"--deny", "10.0.0.5:22", "--allow", "10.0.0.0/8", "--label", "a=b", "--deny=@private",
                  "--allow", "*.pypi.org:443", "--net", "none", "--deny", "1.2.3.4"});
  EXPECT_EQ(rules_of(f), (std::vector<std::string>{"deny 10.0.0.5:22", "allow 10.0.0.0/8", "deny @private",
                                                   "allow *.pypi.org:443", "deny 1.2.3.4"}));
  auto o = network_options_from(f);
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_EQ(o->mode, NetworkMode::kNone);
  ASSERT_EQ(o->rules.size(), 5u);
  EXPECT_FALSE(o->rules[0].allow);
  EXPECT_EQ(o->rules[3].rule, "*.pypi.org:443");

  auto allow_first = parse({"--allow", "@host:8080", "--deny", "@host"});
  EXPECT_EQ(rules_of(allow_first), (std::vector<std::string>{"allow @host:8080", "deny @host"}));
  EXPECT_TRUE(parse({}).rules.empty());
}

TEST(CliNetworkFlags, EveryFlagReachesTheOptions) {
  auto f = parse({"--add-host", "db.test:host-gateway", "--add-host", "v6.test:::1", "--add-host", "b.test:[fd00::1]",
                  "--dns", "1.1.1.1:5353", "-p", "8080:80", "--publish", "[::1]:5353:53/udp", "--max-connections",
                  "64", "--egress-rate", "10m", "--net", "all"});
  auto o = network_options_from(f);
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_EQ(o->mode, NetworkMode::kAll);
  ASSERT_EQ(o->hosts.size(), 3u);
  EXPECT_EQ(o->hosts[0].name, "db.test");
  EXPECT_EQ(o->hosts[0].address, "host-gateway");
  EXPECT_EQ(o->hosts[1].name, "v6.test");
  EXPECT_EQ(o->hosts[1].address, "::1");
  EXPECT_EQ(o->hosts[2].address, "[fd00::1]");
  EXPECT_EQ(o->dns, "1.1.1.1:5353");
  ASSERT_EQ(o->ports.size(), 2u);
  EXPECT_EQ(to_string(o->ports[0]), "127.0.0.1:8080:80");
  EXPECT_EQ(to_string(o->ports[1]), "[::1]:5353:53/udp");
  EXPECT_EQ(o->max_connections, 64u);
  EXPECT_EQ(o->egress_bytes_per_second, 10u << 20);

  auto defaults = network_options_from(parse({}));
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->mode, NetworkMode::kPublic);
  EXPECT_EQ(defaults->max_connections, kDefaultMaxConnections);
  EXPECT_EQ(defaults->egress_bytes_per_second, 0u);
}

TEST(CliNetworkFlags, BadValuesSayWhatIsWrong) {
  auto error_of = [](const std::vector<std::string>& args) {
    auto o = network_options_from(parse(args));
    EXPECT_FALSE(o.ok());
    if (o.ok()) return std::string();
    EXPECT_EQ(o.error().code, EINVAL);
    return o.error().message;
  };
  EXPECT_EQ(error_of({"--net", "open"}), "bad --net \"open\": expected none, public or all");
  EXPECT_EQ(error_of({"--allow", "1.2.3.4", "--deny", "::1"}),
            "bad rule \"::1\": IPv6 addresses go in brackets, as in [::1]:443");
  EXPECT_EQ(error_of({"--add-host", "db.test"}), "bad --add-host \"db.test\": expected NAME:IP");
  EXPECT_EQ(error_of({"--add-host", "db.test:nope"}),
            "bad --add-host \"db.test:nope\": the address \"nope\" is not an IPv4 or IPv6 address, nor host-gateway");
  EXPECT_EQ(error_of({"--dns", "1.1.1.1:0"}), "bad --dns \"1.1.1.1:0\": port \"0\" is not 1 to 65535");
  EXPECT_EQ(error_of({"-p", "80"}), "bad -p \"80\": expected [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]");
  EXPECT_EQ(error_of({"-p", "8080:80", "-p", "127.0.0.1:8080:81"}),
            "bad -p \"127.0.0.1:8080:81\": host port 8080/tcp on 127.0.0.1 is published twice");
  EXPECT_EQ(error_of({"--max-connections", "0"}), "bad --max-connections \"0\": expected a number from 1 to 65536");
  EXPECT_EQ(error_of({"--max-connections", "-1"}), "bad --max-connections \"-1\": expected a number from 1 to 65536");
  EXPECT_EQ(error_of({"--max-connections", "65537"}),
            "bad --max-connections \"65537\": expected a number from 1 to 65536");
  EXPECT_EQ(error_of({"--egress-rate", "fast"}),
            "--egress-rate: bad size \"fast\": give bytes, or a number with k, m, g or t (64m)");
}

TEST(CliNetworkFlags, TlsFlagsReachTheOptionsOnlyWithTlsIntercept) {
  auto o = network_options_from(parse({"--tls-intercept", "--tls-ports", "443,8443", "--tls-bypass", "Pinned.Test.",
                                       "--tls-bypass", "*.bank.test", "--tls-upstream-ca", "/r.pem", "--tls-ca-cert",
                                       "/ca.crt", "--tls-ca-key", "/ca.key", "--tls-proxy", "Proxy.Corp:3128"}));
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_TRUE(o->tls.enabled);
  EXPECT_EQ(o->tls.ports, (std::vector<std::uint16_t>{443, 8443}));
  EXPECT_EQ(o->tls.bypass, (std::vector<std::string>{"Pinned.Test.", "*.bank.test"}));
  EXPECT_EQ(o->tls.upstream_ca_file, "/r.pem");
  EXPECT_EQ(o->tls.ca_certificate_file, "/ca.crt");
  EXPECT_EQ(o->tls.ca_key_file, "/ca.key");
  EXPECT_EQ(o->tls.proxies, (std::vector<std::string>{"Proxy.Corp:3128"}));
  auto plain = network_options_from(parse({"--tls-intercept"}));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->tls.ports, (std::vector<std::uint16_t>{443}));

  auto error_of = [](const std::vector<std::string>& args) {
    auto r = network_options_from(parse(args));
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.error().message;
  };
  EXPECT_EQ(error_of({"--tls-ports", "443"}),
            "--tls-ports, --tls-bypass, --tls-proxy, --tls-upstream-ca and --tls-ca-cert/--tls-ca-key need "
            "--tls-intercept or --secret");
  EXPECT_EQ(error_of({"--tls-intercept", "--tls-proxy", "proxy.corp"}),
            "bad --tls-proxy \"proxy.corp\": expected HOST:PORT (proxy.example:3128, host.moat.internal:3128)");
  EXPECT_EQ(error_of({"--tls-intercept", "--tls-ports", "443,,80"}),
            "bad --tls-ports \"443,,80\": \"\" is not a port (1 to 65535)");
  EXPECT_EQ(error_of({"--tls-intercept", "--tls-ports", "443,0"}),
            "bad --tls-ports \"443,0\": \"0\" is not a port (1 to 65535)");
  EXPECT_EQ(error_of({"--tls-intercept", "--tls-ports", "443,443"}), "bad --tls-ports \"443,443\": port 443 is given twice");
  EXPECT_EQ(error_of({"--tls-intercept", "--tls-bypass", "a b"}),
            "bad --tls-bypass \"a b\": expected a name (api.example.com) or *.suffix (*.example.com)");
  EXPECT_EQ(error_of({"--tls-intercept", "--tls-ca-cert", "/ca.crt"}),
            "bad --tls-ca-cert \"/ca.crt\": --tls-ca-cert and --tls-ca-key go together");
}

TEST(CliNetworkFlags, AnUpdateTakesTheModeOnlyWhenGiven) {
  auto kept = network_update_from(parse({"--deny", "@private", "--allow", "10.0.0.5:5432"}, true));
  ASSERT_TRUE(kept.ok()) << kept.error().message;
  EXPECT_FALSE(kept->mode.has_value());
  ASSERT_EQ(kept->rules.size(), 2u);
  EXPECT_FALSE(kept->rules[0].allow);
  EXPECT_EQ(kept->rules[1].rule, "10.0.0.5:5432");
  auto cleared = network_update_from(parse({"--net", "none"}, true));
  ASSERT_TRUE(cleared.ok());
  EXPECT_EQ(cleared->mode, NetworkMode::kNone);
  EXPECT_TRUE(cleared->rules.empty());
  auto bad = network_update_from(parse({"--allow", "@lan"}, true));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message,
            "bad rule \"@lan\": unknown group \"@lan\" (@public @private @loopback @link-local @metadata @multicast "
            "@host)");
  EXPECT_THROW(parse({"-p", "8080:80"}, true), CLI::ParseError) << "an update changes the policy only";
}

}  // namespace
}  // namespace moat::cli
