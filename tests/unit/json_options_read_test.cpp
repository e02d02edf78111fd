// SandboxOptions and ExecOptions read from JSON (the server's request
// bodies): every field checked, unknown ones refused, errors name the field.
#include <gtest/gtest.h>

#include "moat/json.h"

namespace moat {
namespace {

TEST(SandboxOptionsJson, ReadsEveryKindOfField) {
  auto o = sandbox_options_from_json_text(R"({
    "image": "busybox", "pull": "never", "name": "web", "labels": {"a": "b"},
    "command": ["sh"], "entrypoint": [], "cpus": 2, "cpu_weight": 200, "memory_mib": 512,
    "disk_size_mib": 1024, "accel": "tcg", "idle_timeout_s": 1.5, "max_duration_s": 60,
    "auto_remove": true, "warm_start": false, "hostname": "h",
    "patches": [{"kind": "write", "path": "/etc/motd", "text": "hi", "mode": 420},
                {"kind": "mkdir", "path": "/work"}],
    "volumes": ["/srv:/data:ro", {"source": "vol1", "guest_path": "/v", "size_bytes": 1048576}],
    "tmpfs": ["/tmp:64m", {"guest_path": "/run"}],
    "network": {"mode": "none"}})");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->image, "busybox");
  EXPECT_EQ(o->pull, PullPolicy::kNever);
  EXPECT_EQ(o->labels.at("a"), "b");
  EXPECT_EQ(o->cpus, 2);
  EXPECT_EQ(o->memory_mib, 512);
  EXPECT_EQ(o->accel, Accel::kTcg);
  EXPECT_EQ(o->idle_timeout.count(), 1500);
  EXPECT_TRUE(o->auto_remove);
  EXPECT_FALSE(o->warm_start);
  ASSERT_TRUE(o->entrypoint);
  EXPECT_TRUE(o->entrypoint->empty());
  ASSERT_EQ(o->patches.size(), 2u);
  EXPECT_EQ(o->patches[0].text, "hi");
  EXPECT_EQ(*o->patches[0].mode, 0644u);
  ASSERT_EQ(o->volumes.size(), 2u);
  EXPECT_TRUE(o->volumes[0].read_only);
  EXPECT_EQ(o->volumes[1].size_bytes, 1048576u);
  ASSERT_EQ(o->tmpfs.size(), 2u);
  EXPECT_EQ(o->tmpfs[0].size_bytes, 64u << 20);
  EXPECT_EQ(o->network.mode, NetworkMode::kNone);
  auto empty = sandbox_options_from_json_text("{}");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->memory_mib, 256);
}

TEST(SandboxOptionsJson, RefusesWhatIsWrongNamingTheField) {
  auto expect_error = [](const char* text, const char* field) {
    auto o = sandbox_options_from_json_text(text);
    ASSERT_FALSE(o) << text;
    EXPECT_EQ(o.error().code, EINVAL) << text;
    EXPECT_NE(o.error().message.find(field), std::string::npos) << o.error().message;
  };
  expect_error(R"({"memory_mb": 256})", "sandbox.memory_mb");
  expect_error(R"({"memory_mib": "256"})", "sandbox.memory_mib");
  expect_error(R"({"memory_mib": 1})", "sandbox.memory_mib");
  expect_error(R"({"cpus": -1})", "sandbox.cpus");
  expect_error(R"({"pull": "sometimes"})", "sandbox.pull");
  expect_error(R"({"labels": {"a": 1}})", "sandbox.labels.a");
  expect_error(R"({"patches": [{"kind": "write", "path": "relative", "text": ""}]})", "sandbox.patches[0]");
  expect_error(R"({"patches": [{"kind": "copy", "path": "/x"}]})", "sandbox.patches[0]");
  expect_error(R"({"volumes": ["nocolon"]})", "sandbox.volumes[0]");
  expect_error(R"({"volumes": [{"source": "/a"}]})", "sandbox.volumes[0]");
  expect_error(R"({"idle_timeout_s": -1})", "sandbox.idle_timeout_s");
  expect_error(R"({"network": {"mode": "sideways"}})", "network.mode");
  expect_error(R"([1])", "sandbox");
  expect_error(R"({bad)", "sandbox");
  // The command-line parsers' own codes (EPERM, EISDIR) are a bad field here.
  expect_error(R"({"patches": [{"kind": "mkdir", "path": "/../x"}]})", "sandbox.patches[0]");
  expect_error(R"({"patches": [{"kind": "write", "path": "/etc/", "text": "x"}]})", "sandbox.patches[0]");
  expect_error((R"({"network": )" + std::string(100, '[') + std::string(100, ']') + "}").c_str(), "sandbox");
}

// A value holding a separator of the command-line text would be checked as
// another path or part than the one given.
TEST(SandboxOptionsJson, RefusesSeparatorsOfTheCommandLineForm) {
  auto refused = [](const char* text, const char* field) {
    auto o = sandbox_options_from_json_text(text);
    ASSERT_FALSE(o) << text;
    EXPECT_EQ(o.error().code, EINVAL) << text;
    EXPECT_NE(o.error().message.find(field), std::string::npos) << o.error().message;
  };
  // Checked as "/x" with the text "/..=t": a write to the root.
  refused(R"({"patches": [{"kind": "write", "path": "/x=/..", "text": "t"}]})", "sandbox.patches[0].path");
  refused(R"({"patches": [{"kind": "copy", "path": "/a:/b", "host_path": "/h"}]})", "sandbox.patches[0].path");
  // Read as a read-only "/data", and as a 5-byte tmpfs at "/t".
  refused(R"({"volumes": [{"source": "v", "guest_path": "/data:ro"}]})", "sandbox.volumes[0].guest_path");
  refused(R"({"tmpfs": [{"guest_path": "/t:5"}]})", "sandbox.tmpfs[0].guest_path");
  refused(R"({"secrets": [{"name": "K", "value": "v", "hosts": ["a.com:query"]}]})", "sandbox.secrets[0]");
  refused(R"({"secrets": [{"name": "K@a.com", "value": "v", "hosts": ["b.com"]}]})", "sandbox.secrets[0]");

  auto o = sandbox_options_from_json_text(
      R"({"patches": [{"kind": "copy", "path": "/opt/../srv", "host_path": "/h:/x"},
                      {"kind": "write", "path": "/etc/motd", "text": "a=b", "mode": 384}]})");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->patches[0].guest_path, "/srv");
  EXPECT_EQ(o->patches[0].host_path, "/h:/x");
  EXPECT_EQ(o->patches[1].text, "a=b");
  EXPECT_EQ(*o->patches[1].mode, 0600u);
}

TEST(ExecOptionsJson, ReadsAndChecks) {
  auto e = exec_options_from_json_text(
      R"({"argv": ["sh", "-c", "true"], "env": ["A=1"], "cwd": "/tmp", "user": "1000", "tty": true,
          "rows": 40, "cols": 100, "timeout_s": 2.5, "rlimits": {"nofile": {"soft": 10, "hard": 20}}})");
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->argv.size(), 3u);
  EXPECT_EQ(e->rows, 40);
  EXPECT_EQ(e->timeout.count(), 2500);
  EXPECT_EQ(e->rlimits.at("nofile").hard, 20u);
  EXPECT_FALSE(exec_options_from_json_text(R"({"argv": []})"));
  EXPECT_FALSE(exec_options_from_json_text(R"({})"));
  EXPECT_FALSE(exec_options_from_json_text(R"({"argv": ["x"], "rows": 0})"));
  EXPECT_FALSE(exec_options_from_json_text(R"({"argv": ["x"], "wait": true})"));
  EXPECT_FALSE(exec_options_from_json_text(R"({"argv": ["x"], "rlimits": {"nofile": {"soft": 1}}})"));
}

}  // namespace
}  // namespace moat
