// The C ABI's contract with its callers, without a VM: structures of any
// compiled size, errors as codes and objects, NULLs refused, JSON options
// checked field by field.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <string>

#include "moat/json.h"
#include "moat/moat.h"

namespace moat {
namespace {

// One state directory per process (the runtime is configured once),
// removed when the process ends.
struct ScratchHome {
  std::string path;
  ScratchHome() {
    char tmpl[] = "/tmp/moat-capi-test.XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (d == nullptr) return;
    path = d;
    moat_runtime_options rt{};
    rt.struct_size = sizeof rt;
    rt.home = path.c_str();
    EXPECT_EQ(moat_configure_runtime(&rt, nullptr), 0);
  }
  ~ScratchHome() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

std::string home() {
  static ScratchHome h;
  EXPECT_FALSE(h.path.empty());
  return h.path;
}

TEST(CApi, VersionsAreReported) {
  EXPECT_EQ(moat_abi_version(), MOAT_ABI_VERSION);
  EXPECT_STRNE(moat_version(), "");
}

TEST(CApi, AnErrorCarriesCodeKindAndMessage) {
  home();
  moat_error* err = nullptr;
  char* json = nullptr;
  EXPECT_EQ(moat_inspect_sandbox("no-such-sandbox", &json, &err), ENOENT);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(moat_error_code(err), ENOENT);
  EXPECT_STREQ(moat_error_kind(err), "not_found");
  EXPECT_NE(std::string(moat_error_message(err)).find("no-such-sandbox"), std::string::npos);
  EXPECT_EQ(json, nullptr);
  moat_error_free(err);
  // Without an error pointer the code still says it.
  EXPECT_EQ(moat_inspect_sandbox("no-such-sandbox", &json, nullptr), ENOENT);
}

TEST(CApi, NullArgumentsAreInvalidNotCrashes) {
  moat_error* err = nullptr;
  EXPECT_EQ(moat_sandbox_open(nullptr, nullptr, &err), EINVAL);
  EXPECT_STREQ(moat_error_kind(err), "invalid_argument");
  moat_error_free(err);
  EXPECT_EQ(moat_sandbox_create(nullptr, nullptr, nullptr), EINVAL);
  EXPECT_EQ(moat_sandbox_exec(nullptr, nullptr, nullptr, -1, nullptr, nullptr), EINVAL);
  EXPECT_EQ(moat_exec_write_stdin(nullptr, "x", 1, nullptr), EINVAL);
  EXPECT_EQ(moat_image_inspect(nullptr, nullptr, nullptr), EINVAL);
  EXPECT_EQ(moat_volume_remove(nullptr, 0, nullptr), EINVAL);
  EXPECT_EQ(moat_image_mount(nullptr, nullptr, 0, nullptr, nullptr), EINVAL);
  EXPECT_EQ(moat_mount_serve(nullptr, nullptr), EINVAL);
  EXPECT_EQ(moat_image_unmount(nullptr, 0, nullptr), EINVAL);
  EXPECT_EQ(moat_watch_sandbox_events(0, 0, nullptr, nullptr, nullptr, nullptr), EINVAL);
  moat_mount_free(nullptr);
  moat_events_cancel(nullptr);
  moat_events_free(nullptr);
  moat_sandbox_close(nullptr);
  moat_exec_free(nullptr);
  moat_exec_cancel(nullptr);
  moat_error_free(nullptr);
  moat_string_free(nullptr);
  EXPECT_EQ(moat_exec_pid(nullptr), 0);
}

TEST(CApi, AStructureWithoutItsSizeIsRefused) {
  home();
  moat_sandbox_options o;
  std::memset(&o, 0, sizeof o);  // struct_size left 0
  moat_error* err = nullptr;
  EXPECT_EQ(moat_define_sandbox(&o, nullptr, &err), EINVAL);
  EXPECT_STREQ(moat_error_message(err), "moat_sandbox_options: struct_size not set");
  moat_error_free(err);
}

TEST(CApi, AnOlderCallersShorterStructureReadsItsTailAsDefaults) {
  home();
  // Compiled before `labels` existed: what lies past its struct_size (here
  // garbage that would be invalid) is never read.
  moat_sandbox_options o;
  std::memset(&o, 0xff, sizeof o);
  o.struct_size = offsetof(moat_sandbox_options, labels);
  o.image = nullptr;
  o.pull = MOAT_PULL_MISSING;
  o.insecure_registry = 0;
  o.platform = nullptr;
  o.on_pull_progress = nullptr;
  o.pull_user_data = nullptr;
  o.name = "capi-old-caller";
  char* json = nullptr;
  moat_error* err = nullptr;
  ASSERT_EQ(moat_define_sandbox(&o, &json, &err), 0) << moat_error_message(err);
  std::string info(json);
  moat_string_free(json);
  EXPECT_NE(info.find("\"name\":\"capi-old-caller\""), std::string::npos) << info;
  EXPECT_NE(info.find("\"cpus\":1,"), std::string::npos) << info;
  EXPECT_NE(info.find("\"memory_mib\":256,"), std::string::npos) << info;
  EXPECT_NE(info.find("\"state\":\"created\""), std::string::npos) << info;
  EXPECT_EQ(moat_remove_sandbox("capi-old-caller", 0, nullptr), 0);
}

TEST(CApi, BadOptionsNameTheFieldAndDefineNothing) {
  home();
  struct Case {
    const char* network;
    const char* const* volumes;
    const char* const* labels;
    int memory;
    const char* message;
  };
  const char* bad_volume[] = {"/srv:relative", nullptr};
  const char* bad_label[] = {"novalue", nullptr};
  const Case cases[] = {
      {R"({"rules": [{"allow": true, "rul": "x"}]})", nullptr, nullptr, 0,
       "network.rules[0].rul: not a field of this form"},
      {R"({"mode": "everything"})", nullptr, nullptr, 0, "network.mode: "},
      {"{", nullptr, nullptr, 0, "network: not valid JSON"},
      {R"({"max_connections": 0})", nullptr, nullptr, 0, "network.max_connections: expected 1 to 65536"},
      {nullptr, bad_volume, nullptr, 0, "-v /srv:relative: the guest path \"relative\" must be absolute"},
      {nullptr, nullptr, bad_label, 0, "label \"novalue\": expected KEY=VALUE"},
      {nullptr, nullptr, nullptr, -5, "moat_sandbox_options: sizes and times must not be negative"},
  };
  for (const auto& c : cases) {
    moat_sandbox_options o{};
    o.struct_size = sizeof o;
    o.name = "capi-bad";
    o.network_json = c.network;
    o.volumes = c.volumes;
    o.labels = c.labels;
    o.memory_mib = c.memory;
    moat_error* err = nullptr;
    EXPECT_EQ(moat_define_sandbox(&o, nullptr, &err), EINVAL) << c.message;
    ASSERT_NE(err, nullptr);
    EXPECT_NE(std::string(moat_error_message(err)).find(c.message), std::string::npos)
        << moat_error_message(err) << " vs " << c.message;
    moat_error_free(err);
  }
  char* list = nullptr;
  ASSERT_EQ(moat_list_sandboxes(nullptr, &list, nullptr), 0);
  EXPECT_STREQ(list, "[]");
  moat_string_free(list);
}

TEST(CApi, NetworkJsonReadsBackWhatItShows) {
  NetworkOptions n;
  n.mode = NetworkMode::kNone;
  n.rules = {{true, "*.pypi.org:443"}, {false, "@private"}};
  n.hosts = {{"db.test", "host-gateway"}};
  n.ports = {PublishedPort{"127.0.0.1", 8080, 80, true}};
  n.max_connections = 7;
  n.egress_bytes_per_second = 1000;
  n.tls.enabled = true;
  n.tls.ports = {443, 8443};
  n.tls.bypass = {"*.pinned.test"};
  auto back = network_options_from_json_text(to_json_text(n));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(to_json_text(*back), to_json_text(n));
  auto defaults = network_options_from_json_text("{}");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(to_json_text(*defaults), to_json_text(NetworkOptions{}));
}

TEST(CApi, NetworkUpdateJsonNeedsItsRules) {
  auto u = network_update_from_json_text(R"({"mode": "all", "rules": []})");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->mode, NetworkMode::kAll);
  EXPECT_TRUE(u->rules.empty());
  EXPECT_EQ(network_update_from_json_text(R"({"mode": "all"})").error().message,
            "network.rules: required (an empty array removes every rule)");
  EXPECT_EQ(network_update_from_json_text(R"({"rules": [], "hosts": []})").error().message,
            "network.hosts: not a field of this form");
  EXPECT_EQ(network_update_from_json_text("[]").error().message, "network: expected a JSON object");
  EXPECT_EQ(network_update_from_json_text(std::string(2 << 20, ' ')).error().message, "network: the JSON is over 1 MiB");
}

}  // namespace
}  // namespace moat
