// The one JSON form of NetworkOptions (shim_contract/network_json.h), as the
// sandbox record, config.json and the network_update payload carry it.
#include "shim_contract/network_json.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "shim_contract/shim_config.h"

namespace moat::shim {
namespace {

using Json = nlohmann::json;

NetworkOptions full_options() {
  NetworkOptions o;
  o.mode = NetworkMode::kNone;
  o.rules = {{.allow = false, .rule = "10.0.0.0/8"}, {.allow = true, .rule = "*.pypi.org:443"},
             {.allow = true, .rule = "[::1]:80/udp"}};
  o.hosts = {{"db.test", "host-gateway"}, {"v6.test", "[fd00::1]"}};
  o.dns = "[2606:4700::1111]:53";
  o.ports = {{.host_ip = "127.0.0.1", .host_port = 8080, .guest_port = 80, .udp = false},
             {.host_ip = "::1", .host_port = 5353, .guest_port = 53, .udp = true}};
  o.publish_listening = "0.0.0.0";
  o.max_connections = 7;
  o.egress_bytes_per_second = 10ull << 40;
  o.tls.enabled = true;
  o.tls.ports = {443, 8443};
  o.tls.bypass = {"pinned.test", "*.bank.test"};
  o.tls.proxies = {"host.moat.internal:3128"};
  o.tls.upstream_ca_file = "/etc/roots.pem";
  o.tls.ca_certificate_file = "/home/u/.moat/tls/ca.crt";
  o.tls.ca_key_file = "/home/u/.moat/tls/ca.key";
  return o;
}

void expect_same(const NetworkOptions& a, const NetworkOptions& b) {
  EXPECT_EQ(a.mode, b.mode);
  ASSERT_EQ(a.rules.size(), b.rules.size());
  for (std::size_t i = 0; i < a.rules.size(); ++i) {
    EXPECT_EQ(a.rules[i].allow, b.rules[i].allow) << i;
    EXPECT_EQ(a.rules[i].rule, b.rules[i].rule) << i;
  }
  ASSERT_EQ(a.hosts.size(), b.hosts.size());
  for (std::size_t i = 0; i < a.hosts.size(); ++i) {
    EXPECT_EQ(a.hosts[i].name, b.hosts[i].name) << i;
    EXPECT_EQ(a.hosts[i].address, b.hosts[i].address) << i;
  }
  EXPECT_EQ(a.dns, b.dns);
  ASSERT_EQ(a.ports.size(), b.ports.size());
  for (std::size_t i = 0; i < a.ports.size(); ++i) {
    EXPECT_EQ(a.ports[i].host_ip, b.ports[i].host_ip) << i;
    EXPECT_EQ(a.ports[i].host_port, b.ports[i].host_port) << i;
    EXPECT_EQ(a.ports[i].guest_port, b.ports[i].guest_port) << i;
    EXPECT_EQ(a.ports[i].udp, b.ports[i].udp) << i;
  }
  EXPECT_EQ(a.publish_listening, b.publish_listening);
  EXPECT_EQ(a.max_connections, b.max_connections);
  EXPECT_EQ(a.egress_bytes_per_second, b.egress_bytes_per_second);
  EXPECT_EQ(a.tls.enabled, b.tls.enabled);
  EXPECT_EQ(a.tls.ports, b.tls.ports);
  EXPECT_EQ(a.tls.bypass, b.tls.bypass);
  EXPECT_EQ(a.tls.proxies, b.tls.proxies);
  EXPECT_EQ(a.tls.upstream_ca_file, b.tls.upstream_ca_file);
  EXPECT_EQ(a.tls.ca_certificate_file, b.tls.ca_certificate_file);
  EXPECT_EQ(a.tls.ca_key_file, b.tls.ca_key_file);
}

TEST(NetworkJson, EveryFieldRoundTripsInOrder) {
  NetworkOptions o = full_options();
  Json j = network_to_json(o);
  EXPECT_EQ(j["mode"], "none");
  EXPECT_EQ(j["rules"][0], (Json{{"allow", false}, {"rule", "10.0.0.0/8"}}));
  EXPECT_EQ(j["ports"][1], (Json{{"host_ip", "::1"}, {"host_port", 5353}, {"guest_port", 53}, {"udp", true}}));
  // Through text, as the record and config.json are stored.
  auto back = network_from_json(Json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  expect_same(*back, o);
  auto defaults = network_from_json(network_to_json(NetworkOptions{}));
  ASSERT_TRUE(defaults.ok());
  expect_same(*defaults, NetworkOptions{});
}

TEST(NetworkJson, MissingFieldsAreTheirDefaults) {
  auto empty = network_from_json(Json::object());
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  expect_same(*empty, NetworkOptions{});
  EXPECT_EQ(empty->mode, NetworkMode::kPublic);
  EXPECT_EQ(empty->max_connections, kDefaultMaxConnections);
  auto some = network_from_json(Json{{"rules", {{{"rule", "1.2.3.4"}}}}, {"ports", {{{"host_port", 80}}}}});
  ASSERT_TRUE(some.ok()) << some.error().message;
  ASSERT_EQ(some->rules.size(), 1u);
  EXPECT_TRUE(some->rules[0].allow);
  ASSERT_EQ(some->ports.size(), 1u);
  EXPECT_EQ(some->ports[0].host_ip, "127.0.0.1");
  EXPECT_EQ(some->ports[0].host_port, 80);
  EXPECT_EQ(some->ports[0].guest_port, 0) << "the form only: validate_network refuses it";
}

TEST(NetworkJson, WrongTypesAndRangesAreNamed) {
  auto error_of = [](const Json& j) {
    auto r = network_from_json(j);
    EXPECT_FALSE(r.ok()) << j.dump();
    return r.ok() ? std::string() : r.error().message;
  };
  EXPECT_EQ(error_of(Json::array()), "the network options are not an object");
  EXPECT_EQ(error_of({{"mode", "open"}}), "network field \"mode\" is not none, public or all");
  EXPECT_EQ(error_of({{"mode", 1}}), "network field \"mode\" is not a string");
  EXPECT_EQ(error_of({{"rules", "1.2.3.4"}}), "network field \"rules\" is not a list");
  EXPECT_EQ(error_of({{"rules", {"1.2.3.4"}}}), "network field \"rules[0]\" is not an object");
  EXPECT_EQ(error_of({{"rules", {{{"allow", true}}}}}), "network field \"rules[0].rule\" is missing");
  EXPECT_EQ(error_of({{"rules", {{{"allow", 1}, {"rule", "x"}}}}}), "network field \"rules[0].allow\" is not a boolean");
  EXPECT_EQ(error_of({{"hosts", {{{"name", 5}}}}}), "network field \"hosts[0].name\" is not a string");
  EXPECT_EQ(error_of({{"ports", {{{"host_port", 65536}}}}}), "network field \"ports[0].host_port\" is out of range");
  EXPECT_EQ(error_of({{"ports", {{{"guest_port", -1}}}}}), "network field \"ports[0].guest_port\" is not an unsigned integer");
  EXPECT_EQ(error_of({{"max_connections", 1ull << 32}}), "network field \"max_connections\" is out of range");
  EXPECT_EQ(error_of({{"dns", false}}), "network field \"dns\" is not a string");
  EXPECT_EQ(error_of({{"tls", 1}}), "network field \"tls\" is not an object");
  EXPECT_EQ(error_of({{"tls", {{"enabled", "yes"}}}}), "network field \"tls.enabled\" is not a boolean");
  EXPECT_EQ(error_of({{"tls", {{"ports", {443, 70000}}}}}), "network field \"tls.ports[1]\" is out of range");
  EXPECT_EQ(error_of({{"tls", {{"bypass", "x"}}}}), "network field \"tls.bypass\" is not a list");
  EXPECT_EQ(error_of({{"tls", {{"bypass", {1}}}}}), "network field \"tls.bypass[0]\" is not a string");
}

TEST(NetworkJson, ThePolicyPayloadNeedsModeAndRules) {
  NetworkPolicy p{NetworkMode::kAll, {{.allow = false, .rule = "@metadata"}, {.allow = true, .rule = "@host:8080"}}};
  Json j = network_policy_to_json(p);
  EXPECT_EQ(j, (Json{{"mode", "all"},
                     {"rules", {{{"allow", false}, {"rule", "@metadata"}}, {{"allow", true}, {"rule", "@host:8080"}}}}}));
  // As it travels: CBOR in a frame.
  auto back = network_policy_from_json(Json::from_cbor(Json::to_cbor(j)));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->mode, NetworkMode::kAll);
  ASSERT_EQ(back->rules.size(), 2u);
  EXPECT_FALSE(back->rules[0].allow);
  EXPECT_EQ(back->rules[1].rule, "@host:8080");
  auto no_rules = network_policy_from_json({{"mode", "none"}});
  ASSERT_FALSE(no_rules.ok());
  EXPECT_EQ(no_rules.error().message, "network field \"rules\" is missing");
  auto no_mode = network_policy_from_json({{"rules", Json::array()}});
  ASSERT_FALSE(no_mode.ok());
  EXPECT_EQ(no_mode.error().message, "network field \"mode\" is missing");
  auto cleared = network_policy_from_json({{"mode", "public"}, {"rules", Json::array()}});
  ASSERT_TRUE(cleared.ok());
  EXPECT_TRUE(cleared->rules.empty());
}

class ShimConfigNetwork : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-network-json-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/config.json";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, path_;
};

TEST_F(ShimConfigNetwork, ConfigJsonCarriesTheOptions) {
  ShimConfig c;
  c.sandbox_id = "abc";
  c.dir = dir_;
  c.network = full_options();
  ASSERT_TRUE(write_shim_config(c, path_).ok());
  auto back = read_shim_config(path_);
  ASSERT_TRUE(back.ok()) << back.error().message;
  expect_same(back->network, c.network);
  std::ifstream in(path_);
  Json j = Json::parse(in);
  EXPECT_EQ(j["network"], network_to_json(c.network)) << "one form for the record and config.json";
}

TEST_F(ShimConfigNetwork, AConfigWithoutNetworkReadsAsTheDefaultAndABadOneIsRefused) {
  ShimConfig c;
  c.sandbox_id = "abc";
  c.dir = dir_;
  ASSERT_TRUE(write_shim_config(c, path_).ok());
  Json j;
  {
    std::ifstream in(path_);
    j = Json::parse(in);
  }
  j.erase("network");
  std::ofstream(path_, std::ios::trunc) << j.dump();
  auto back = read_shim_config(path_);
  ASSERT_TRUE(back.ok()) << back.error().message;
  expect_same(back->network, NetworkOptions{});

  j["network"] = {{"mode", "open"}};
  std::ofstream(path_, std::ios::trunc) << j.dump();
  auto bad = read_shim_config(path_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, path_ + ": network field \"mode\" is not none, public or all");
}

}  // namespace
}  // namespace moat::shim
