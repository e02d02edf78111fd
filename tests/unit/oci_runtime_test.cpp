// moat-runtime's pure parts: the bundle's config.json as it maps onto a
// sandbox, runc's signal names, the state JSON engines parse, container ids.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "oci_runtime/bundle_config.h"
#include "oci_runtime/container_state.h"
#include "oci_runtime/network_namespace.h"
#include "oci_runtime/runtime_commands.h"

namespace moat::oci {
namespace {

class BundleDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-bundle-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/rootfs");
    std::filesystem::create_directories(dir_ + "/share");
    std::ofstream(dir_ + "/hosts") << "127.0.0.1 localhost\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write_config(const nlohmann::json& j) { std::ofstream(dir_ + "/config.json") << j.dump(); }
  nlohmann::json base() {
    return {{"ociVersion", "1.0.2-dev"},
            {"process", {{"args", {"sh", "-c", "echo hi"}}, {"env", {"PATH=/bin", "A=b"}}, {"cwd", "/work"},
                         {"user", {{"uid", 1000}, {"gid", 100}}}, {"terminal", true},
                         {"consoleSize", {{"height", 40}, {"width", 120}}},
                         {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"soft", 1024}, {"hard", 2048}}}}}},
            {"root", {{"path", "rootfs"}}},
            {"hostname", "box"},
            {"mounts",
             {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
              {{"destination", "/dev"}, {"type", "tmpfs"}, {"source", "tmpfs"}},
              {{"destination", "/data"}, {"type", "bind"}, {"source", dir_ + "/share"}, {"options", {"rbind", "ro"}}},
              {{"destination", "/etc/hosts"}, {"type", "bind"}, {"source", dir_ + "/hosts"}, {"options", {"bind"}}},
              {{"destination", "/scratch"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"size=64m"}}}}},
            {"linux", {{"resources", {{"memory", {{"limit", 536870912}}}, {"cpu", {{"quota", 150000}, {"period", 100000}}}}}}},
            {"annotations", {{"org.example", "x"}}}};
  }
  std::string dir_;
};

TEST_F(BundleDir, EveryFieldMoatAppliesIsRead) {
  write_config(base());
  auto c = read_bundle_config(dir_);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->oci_version, "1.0.2-dev");
  EXPECT_EQ(c->process.args, (std::vector<std::string>{"sh", "-c", "echo hi"}));
  EXPECT_EQ(c->process.env, (std::vector<std::string>{"PATH=/bin", "A=b"}));
  EXPECT_EQ(c->process.cwd, "/work");
  EXPECT_EQ(c->process.uid, 1000u);
  EXPECT_EQ(c->process.gid, 100u);
  EXPECT_TRUE(c->process.terminal);
  EXPECT_EQ(c->process.rows, 40);
  EXPECT_EQ(c->process.cols, 120);
  ASSERT_EQ(c->process.rlimits.count("nofile"), 1u);
  EXPECT_EQ(c->process.rlimits.at("nofile").soft, 1024u);
  EXPECT_EQ(c->process.rlimits.at("nofile").hard, 2048u);
  EXPECT_EQ(c->rootfs, dir_ + "/rootfs");
  EXPECT_EQ(c->hostname, "box");
  ASSERT_EQ(c->binds.size(), 2u);
  EXPECT_EQ(c->binds[0].destination, "/data");
  EXPECT_TRUE(c->binds[0].read_only);
  EXPECT_FALSE(c->binds[0].is_file);
  EXPECT_EQ(c->binds[1].destination, "/etc/hosts");
  EXPECT_TRUE(c->binds[1].is_file);
  ASSERT_EQ(c->tmpfs.size(), 1u);  // /dev is the guest's own
  EXPECT_EQ(c->tmpfs[0].destination, "/scratch");
  EXPECT_EQ(c->tmpfs[0].size_bytes, 64ull << 20);
  EXPECT_EQ(c->memory_mib, 512);
  EXPECT_EQ(c->cpus, 2);
  EXPECT_EQ(c->annotations.at("org.example"), "x");
  EXPECT_TRUE(c->unsupported.empty()) << ::testing::PrintToString(c->unsupported);
}

TEST_F(BundleDir, WhatIsNotAppliedIsNamed) {
  auto j = base();
  j["process"]["capabilities"] = {{"bounding", {"CAP_CHOWN"}}};
  j["process"]["noNewPrivileges"] = true;
  j["root"]["readonly"] = true;
  j["linux"]["namespaces"] = {{{"type", "network"}, {"path", "/run/netns/x"}}};
  j["linux"]["seccomp"] = {{"defaultAction", "SCMP_ACT_ERRNO"}};
  j["hooks"] = {{"prestart", {{{"path", "/bin/true"}}}}};
  write_config(j);
  auto c = read_bundle_config(dir_);
  ASSERT_TRUE(c.ok()) << c.error().message;
  std::vector<std::string> fields;
  for (const auto& u : c->unsupported) fields.push_back(u.substr(0, u.find(':')));
  EXPECT_EQ(fields, (std::vector<std::string>{"linux.seccomp", "hooks"}));
  ASSERT_TRUE(c->process.capabilities.has_value());  // applied in the guest
  EXPECT_EQ(c->process.capabilities->bounding, 1ull << 0);  // CAP_CHOWN
  EXPECT_EQ(c->process.capabilities->effective, 0u);
  EXPECT_TRUE(c->process.no_new_privileges);
  EXPECT_TRUE(c->root_readonly);  // applied: the root share is served read-only
  EXPECT_EQ(c->network_namespace, NetworkNamespace::kJoin);  // applied: joined
  EXPECT_EQ(c->network_namespace_path, "/run/netns/x");
}

TEST_F(BundleDir, TheNetworkNamespaceAndTheNetworkAnnotations) {
  auto j = base();
  write_config(j);
  auto host = read_bundle_config(dir_);
  ASSERT_TRUE(host.ok()) << host.error().message;
  EXPECT_EQ(host->network_namespace, NetworkNamespace::kHost);
  EXPECT_FALSE(host->network_mode.has_value());
  EXPECT_EQ(host->network.publish_listening, "") << "the host's namespace: nothing is published unasked";

  // The engine's namespace: what the guest listens on is published there,
  // unless the annotation says otherwise.
  auto joined = base();
  joined["linux"]["namespaces"] = {{{"type", "network"}, {"path", "/run/netns/x"}}};
  write_config(joined);
  auto pod = read_bundle_config(dir_);
  ASSERT_TRUE(pod.ok()) << pod.error().message;
  EXPECT_EQ(pod->network.publish_listening, "0.0.0.0");
  for (auto [value, expected] : {std::pair{"none", ""}, std::pair{"::", "::"}}) {
    joined["annotations"]["io.moat.network.publish-listening"] = value;
    write_config(joined);
    auto a = read_bundle_config(dir_);
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(a->network.publish_listening, expected) << value;
  }

  j["linux"]["namespaces"] = {{{"type", "pid"}}, {{"type", "network"}}};
  j["annotations"]["io.moat.network"] = "public";
  j["annotations"]["io.moat.network.allow"] = "@host:8080, example.com:443";
  j["annotations"]["io.moat.network.deny"] = "10.0.0.0/8";
  j["annotations"]["io.moat.network.publish"] = "0.0.0.0:80:8080,127.0.0.1:53:53/udp";
  j["annotations"]["io.moat.network.dns"] = "10.96.0.10";
  write_config(j);
  auto c = read_bundle_config(dir_);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->network_namespace, NetworkNamespace::kFresh);
  EXPECT_EQ(c->network_mode, NetworkMode::kPublic);
  ASSERT_EQ(c->network.rules.size(), 3u);
  EXPECT_TRUE(c->network.rules[0].allow);
  EXPECT_EQ(c->network.rules[0].rule, "@host:8080");
  EXPECT_EQ(c->network.rules[1].rule, "example.com:443");
  EXPECT_FALSE(c->network.rules[2].allow);
  EXPECT_EQ(c->network.rules[2].rule, "10.0.0.0/8");
  ASSERT_EQ(c->network.ports.size(), 2u);
  EXPECT_EQ(to_string(c->network.ports[0]), "0.0.0.0:80:8080");
  EXPECT_EQ(to_string(c->network.ports[1]), "127.0.0.1:53:53/udp");
  EXPECT_EQ(c->network.dns, "10.96.0.10");

  struct Case {
    const char* key;
    const char* value;
    const char* prefix;
  };
  const Case bad[] = {
      {"io.moat.network", "open", "config.json: annotations.io.moat.network: "},
      {"io.moat.network.allow", "@nowhere", "config.json: annotations.io.moat.network*: "},
      {"io.moat.network.publish", "80", "config.json: annotations.io.moat.network.publish: "},
      {"io.moat.network.dns", "not-an-ip", "config.json: annotations.io.moat.network*: "},
      {"io.moat.network.publish-listening", "[::]", "config.json: annotations.io.moat.network*: "},
  };
  for (const auto& k : bad) {
    auto b = base();
    b["annotations"][k.key] = k.value;
    write_config(b);
    auto r = read_bundle_config(dir_);
    ASSERT_FALSE(r.ok()) << k.key;
    EXPECT_EQ(r.error().code, EINVAL);
    EXPECT_EQ(r.error().message.rfind(k.prefix, 0), 0u) << r.error().message;
  }
  auto relative = base();
  relative["linux"]["namespaces"] = {{{"type", "network"}, {"path", "netns/x"}}};
  write_config(relative);
  auto r = read_bundle_config(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "config.json: linux.namespaces network path: must be an absolute path");
}

TEST(OciNetwork, TheEnginesResolvConfKeepsItsSearchButAsksMoatsResolver) {
  std::string engine = "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n";
  EXPECT_EQ(first_nameserver(engine), "10.96.0.10");
  EXPECT_EQ(first_nameserver("# none\n"), "");
  EXPECT_EQ(first_nameserver("nameserver\nnameserver   fd00::1  \n"), "fd00::1");
  // As the sandbox's own resolver reads resolv.conf: an address it cannot use is passed over.
  EXPECT_EQ(first_nameserver("nameserver fe80::1%eth0\nnameserver 10.0.0.1 # second\n"), "10.0.0.1");
  EXPECT_EQ(with_guest_nameservers(engine, "nameserver 10.0.2.3\n"),
            "nameserver 10.0.2.3\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n");
}

TEST(OciNetwork, JoiningANamespaceThatIsNotThereSaysWhich) {
  auto st = join_network_namespace("/nonexistent/netns");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ENOENT);
  EXPECT_NE(st.error().message.find("/nonexistent/netns"), std::string::npos) << st.error().message;
}

TEST_F(BundleDir, BadFieldsAreErrorsThatNameThem) {
  struct Case {
    const char* pointer;
    nlohmann::json value;
    const char* message;
  };
  const Case cases[] = {
      {"/process/args", nlohmann::json::array(), "config.json: process.args: no command given"},
      {"/process/args", {"sh", 3}, "config.json: process.args: expected an array of strings"},
      {"/process/cwd", "relative", "config.json: process.cwd: must be an absolute path"},
      {"/process/user/uid", -1, "config.json: process.user.uid: must not be negative"},
      {"/process/terminal", "yes", "config.json: process.terminal: expected true or false"},
      {"/root/path", "", "config.json: root.path: missing"},
      {"/annotations/io.moat.memory", "12", "config.json: annotations.io.moat.memory: expected a number from 64 to 262144"},
      {"/process/capabilities", {{"effective", {"CAP_NET_RAW", "CAP_FLY"}}},
       "config.json: process.capabilities.effective: unknown capability \"CAP_FLY\""},
      {"/process/noNewPrivileges", "yes", "config.json: process.noNewPrivileges: expected true or false"},
      {"/process/rlimits/0/type", "RLIMIT_TEST", "config.json: process.rlimits: unknown type \"RLIMIT_TEST\""},
      {"/process/rlimits/0/type", "NOFILE", "config.json: process.rlimits: unknown type \"NOFILE\""},
      {"/process/rlimits/0/soft", 4096, "config.json: process.rlimits: RLIMIT_NOFILE: the soft limit is above the hard one"},
  };
  for (const auto& k : cases) {
    auto j = base();
    j[nlohmann::json::json_pointer(k.pointer)] = k.value;
    write_config(j);
    auto c = read_bundle_config(dir_);
    ASSERT_FALSE(c.ok()) << k.pointer;
    EXPECT_EQ(c.error().code, EINVAL) << k.pointer;
    EXPECT_EQ(c.error().message, k.message);
  }
  std::ofstream(dir_ + "/config.json") << "{not json";
  auto broken = read_bundle_config(dir_);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().message, dir_ + "/config.json: not valid JSON");
  std::ofstream(dir_ + "/config.json") << std::string(kMaxConfigBytes + 1, ' ');
  auto huge = read_bundle_config(dir_);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, EFBIG);
}

TEST(OciSignals, NamesAndNumbersAsRuncTakesThem) {
  for (const char* s : {"KILL", "kill", "SIGKILL", "sigkill", "9"}) {
    auto n = parse_signal(s);
    ASSERT_TRUE(n.ok()) << s;
    EXPECT_EQ(*n, 9) << s;
  }
  EXPECT_EQ(*parse_signal("TERM"), 15);
  EXPECT_EQ(*parse_signal("28"), 28);
  EXPECT_EQ(*parse_signal("WINCH"), 28);
  for (const char* bad : {"", "SIGNOPE", "0", "65", "99999", "-9"}) {
    auto n = parse_signal(bad);
    ASSERT_FALSE(n.ok()) << bad;
    EXPECT_EQ(n.error().message, std::string("unknown signal \"") + bad + "\"");
  }
}

TEST(OciState, TheJsonIsRuncsAndAStoppedContainerHasNoPid) {
  ContainerRecord r;
  r.id = "c1";
  r.oci_version = "1.0.2-dev";
  r.bundle = "/b";
  r.rootfs = "/b/rootfs";
  r.created = "2026-12-06T15:04:05.5Z";
  r.keeper_pid = 4242;
  EXPECT_EQ(state_json(r, ContainerStatus::kRunning),
            "{\n  \"ociVersion\": \"1.0.2-dev\",\n  \"id\": \"c1\",\n  \"pid\": 4242,\n  \"status\": \"running\",\n"
            "  \"bundle\": \"/b\",\n  \"rootfs\": \"/b/rootfs\",\n  \"created\": \"2026-12-06T15:04:05.5Z\",\n"
            "  \"owner\": \"\"\n}");
  r.annotations["k"] = "v";
  auto stopped = nlohmann::json::parse(state_json(r, ContainerStatus::kStopped));
  EXPECT_EQ(stopped["pid"], 0);
  EXPECT_EQ(stopped["status"], "stopped");
  EXPECT_EQ(stopped["annotations"]["k"], "v");
}

TEST(OciState, ContainerIdsAreRuncs) {
  for (std::string ok : {std::string("abc"), std::string("a.b-c_d+e"), std::string(64, 'f')})
    EXPECT_TRUE(check_container_id(ok).ok()) << ok;
  for (const char* bad : {"", ".", "..", "a/b", "a b", "moat", "ü"}) EXPECT_FALSE(check_container_id(bad).ok()) << bad;
  EXPECT_EQ(check_container_id("a/b").error().message, "invalid container ID format: a/b");
}

TEST(OciState, TheKeeperIsKnownByPidAndStartTime) {
  ContainerRecord r;
  r.keeper_pid = ::getpid();
  r.keeper_start = process_start_time(::getpid());
  ASSERT_NE(r.keeper_start, 0u);
  EXPECT_TRUE(keeper_alive(r));
  r.keeper_start += 1;  // the same pid, another process
  EXPECT_FALSE(keeper_alive(r));
}

TEST(OciState, TheCreationTimeIsRfc3339InUtc) {
  std::string t = rfc3339_now();
  ASSERT_GE(t.size(), 20u);
  EXPECT_EQ(t[4], '-');
  EXPECT_EQ(t[10], 'T');
  EXPECT_EQ(t.back(), 'Z');
}

}  // namespace
}  // namespace moat::oci
