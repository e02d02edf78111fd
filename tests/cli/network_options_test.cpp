// A sandbox's network options through the CLI, without a VM: `moat create`
// keeps them in the record and config.json, `moat inspect` shows them, and
// `moat network update` replaces the mode and rules of a sandbox that is not
// running. The runtime files are stand-ins: create checks they exist, and
// nothing here boots.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

using Json = nlohmann::json;

// What inspect shows of a sandbox that does not intercept TLS.
Json no_tls() {
  return {{"intercept", false},
          {"ports", {443}},
          {"bypass", Json::array()},
          {"proxies", Json::array()},
          {"upstream_ca_file", ""},
          {"ca_certificate_file", ""}};
}

class CliNetwork : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-cli-network-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/root/bin");
    std::ofstream(dir_ + "/root/bin/hello") << "hello\n";
    std::ofstream(dir_ + "/vmlinux") << "not a kernel\n";
    std::ofstream(dir_ + "/initramfs.cpio") << "not an initramfs\n";
    env_ = {"MOAT_KERNEL=" + dir_ + "/vmlinux", "MOAT_INITRAMFS=" + dir_ + "/initramfs.cpio", "MOAT_QEMU=/bin/true"};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Outcome moat(const std::vector<std::string>& args) { return run_moat(args, "", env_); }

  Json inspect(const std::string& id) {
    auto o = moat({"inspect", id});
    EXPECT_EQ(o.exit_code, 0) << o.err;
    auto j = Json::parse(o.out, nullptr, false);
    if (!j.is_array() || j.size() != 1) {
      ADD_FAILURE() << "inspect " << id << ": " << o.out << o.err;
      return Json::object();
    }
    return j[0];
  }

  std::string dir_;
  std::vector<std::string> env_;
};

TEST_F(CliNetwork, CreateKeepsTheOptionsAndUpdateReplacesModeAndRules) {
  auto created = moat({"create", "--name", "netbox", "--rootfs-dir", dir_ + "/root", "--accel", "tcg", "--net", "none",
                       "--deny", "10.0.0.5:22", "--allow", "10.0.0.0/8", "--deny", "@metadata", "--allow",
                       "*.pypi.org:443", "--add-host", "db.test:host-gateway", "--add-host", "v6.test:::1", "--dns",
                       "1.1.1.1:53", "-p", "8080:80", "--publish", "[::1]:5353:53/udp", "--publish-listening", "::",
                       "--max-connections", "64",
                       "--egress-rate", "1m"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));

  Json expected = {
      {"mode", "none"},
      {"rules",
       {{{"allow", false}, {"rule", "10.0.0.5:22"}},
        {{"allow", true}, {"rule", "10.0.0.0/8"}},
        {{"allow", false}, {"rule", "@metadata"}},
        {{"allow", true}, {"rule", "*.pypi.org:443"}}}},
      {"hosts", {{{"name", "db.test"}, {"address", "host-gateway"}}, {{"name", "v6.test"}, {"address", "::1"}}}},
      {"dns", "1.1.1.1:53"},
      {"ports",
       {{{"host_ip", "127.0.0.1"}, {"host_port", 8080}, {"guest_port", 80}, {"protocol", "tcp"}},
        {{"host_ip", "::1"}, {"host_port", 5353}, {"guest_port", 53}, {"protocol", "udp"}}}},
      {"publish_listening", "::"},
      {"max_connections", 64},
      {"egress_bytes_per_second", 1048576},
      {"tls", no_tls()}};
  Json j = inspect("netbox");
  EXPECT_EQ(j["state"], "created");
  EXPECT_EQ(j["network"], expected) << j["network"].dump(2);

  // config.json, derived from the record, carries the same options.
  {
    std::ifstream in(test_home() + "/sandboxes/" + id + "/config.json");
    Json cfg = Json::parse(in, nullptr, false);
    ASSERT_TRUE(cfg.is_object());
    EXPECT_EQ(cfg["network"]["mode"], "none");
    EXPECT_EQ(cfg["network"]["rules"], expected["rules"]);
    EXPECT_EQ(cfg["network"]["ports"][1],
              (Json{{"host_ip", "::1"}, {"host_port", 5353}, {"guest_port", 53}, {"udp", true}}));
  }

  // The rules are replaced as a whole, in the order typed; the mode stays
  // unless given; hosts, resolver, ports and limits stay.
  auto updated = moat({"network", "update", "netbox", "--allow", "@host:8080", "--deny", "@private"});
  EXPECT_EQ(updated.exit_code, 0) << updated.err;
  EXPECT_EQ(updated.out, "netbox\n");
  Json after = expected;
  after["rules"] = {{{"allow", true}, {"rule", "@host:8080"}}, {{"allow", false}, {"rule", "@private"}}};
  EXPECT_EQ(inspect(id)["network"], after);

  auto opened = moat({"network", "update", id, "--net", "all"});
  EXPECT_EQ(opened.exit_code, 0) << opened.err;
  after["mode"] = "all";
  after["rules"] = Json::array();
  EXPECT_EQ(inspect("netbox")["network"], after);

  auto refused = moat({"network", "update", "netbox", "--allow", "[::1"});
  EXPECT_EQ(refused.exit_code, 125);
  EXPECT_EQ(refused.err, "moat: bad rule \"[::1\": \"[\" without \"]\"\n");
  EXPECT_EQ(inspect("netbox")["network"], after) << "a refused update changes nothing";

  EXPECT_EQ(moat({"rm", "netbox"}).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST_F(CliNetwork, TheDefaultsAreShownToo) {
  auto created = moat({"create", "--rootfs-dir", dir_ + "/root", "--accel", "tcg"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));
  EXPECT_EQ(inspect(id)["network"], (Json{{"mode", "public"},
                                          {"rules", Json::array()},
                                          {"hosts", Json::array()},
                                          {"dns", ""},
                                          {"ports", Json::array()},
                                          {"publish_listening", ""},
                                          {"max_connections", 1024},
                                          {"egress_bytes_per_second", 0},
                                          {"tls", no_tls()}}));
  EXPECT_EQ(moat({"rm", id}).exit_code, 0);
  auto bad = moat({"create", "--rootfs-dir", dir_ + "/root", "--publish-listening", "localhost"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_EQ(bad.err, "moat: bad --publish-listening \"localhost\": expected the host address to publish at, IPv4 or "
                     "IPv6 without brackets (0.0.0.0, ::, 127.0.0.1)\n");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

// --tls-intercept settles the CA at create (docs/tls.md): the installation's,
// made on first use, or the user's, checked; bad files are refused with
// their path and the reason.
TEST_F(CliNetwork, TlsInterceptionSettlesTheCaAndRefusesBadFiles) {
  auto created = moat({"create", "--rootfs-dir", dir_ + "/root", "--accel", "tcg", "--tls-intercept", "--tls-ports",
                       "443,8443", "--tls-bypass", "Pinned.Test", "--tls-proxy", "host.moat.internal:3128"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));
  EXPECT_EQ(inspect(id)["network"]["tls"], (Json{{"intercept", true},
                                                 {"ports", {443, 8443}},
                                                 {"bypass", {"Pinned.Test"}},
                                                 {"proxies", {"host.moat.internal:3128"}},
                                                 {"upstream_ca_file", ""},
                                                 {"ca_certificate_file", test_home() + "/tls/ca.crt"}}));
  EXPECT_EQ(std::filesystem::status(test_home() + "/tls/ca.key").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(moat({"rm", id}).exit_code, 0);

  std::ofstream(dir_ + "/bad.crt") << "not a certificate\n";
  auto bad_ca = moat({"create", "--rootfs-dir", dir_ + "/root", "--tls-intercept", "--tls-ca-cert", dir_ + "/bad.crt",
                      "--tls-ca-key", dir_ + "/bad.crt"});
  EXPECT_EQ(bad_ca.exit_code, 125);
  EXPECT_EQ(bad_ca.err.rfind("moat: --tls-ca-cert/--tls-ca-key: " + dir_ + "/bad.crt: not a PEM certificate: ", 0), 0u)
      << bad_ca.err;
  auto no_roots = moat({"create", "--rootfs-dir", dir_ + "/root", "--tls-intercept", "--tls-upstream-ca",
                        dir_ + "/none.pem"});
  EXPECT_EQ(no_roots.exit_code, 125);
  EXPECT_EQ(no_roots.err, "moat: --tls-upstream-ca " + dir_ + "/none.pem: No such file or directory\n");
  auto empty_roots = moat({"create", "--rootfs-dir", dir_ + "/root", "--tls-intercept", "--tls-upstream-ca",
                           dir_ + "/bad.crt"});
  EXPECT_EQ(empty_roots.exit_code, 125);
  EXPECT_EQ(empty_roots.err, "moat: --tls-upstream-ca: " + dir_ + "/bad.crt: no PEM certificate in it\n");
  auto unset = moat({"create", "--rootfs-dir", dir_ + "/root", "--tls-bypass", "a.test"});
  EXPECT_EQ(unset.exit_code, 125);
  ::unsetenv("MOAT_TEST_NO_SUCH_SECRET");
  auto no_value = moat({"create", "--rootfs-dir", dir_ + "/root", "--secret", "MOAT_TEST_NO_SUCH_SECRET@api.test"});
  EXPECT_EQ(no_value.exit_code, 125);
  EXPECT_EQ(no_value.err, "moat: --secret MOAT_TEST_NO_SUCH_SECRET@api.test: the environment variable "
                          "MOAT_TEST_NO_SUCH_SECRET is not set (the value is read from it, never from the command "
                          "line)\n");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

}  // namespace
}  // namespace moat::test
