// include/moat/runtime.h: settings given by the front end win over the
// environment, are checked, reach the layers that use them, and doctor's
// report reflects them.
#include "moat/runtime.h"

#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "store/moat_home.h"
#include "util/runtime_settings.h"
#include "vm/runtime_files.h"

namespace moat {
namespace {

class RuntimeOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-runtime-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override {
    ASSERT_TRUE(configure_runtime({}).ok());
    (void)store::remove_tree(dir_);
  }
  std::string dir_;
};

TEST_F(RuntimeOptionsTest, ConfiguredHomeWinsOverTheEnvironment) {
  ::setenv("MOAT_HOME", (dir_ + "/from-env").c_str(), 1);
  RuntimeOptions options;
  options.home = dir_ + "/configured";
  ASSERT_TRUE(configure_runtime(options).ok());
  auto home = store::moat_home();
  ASSERT_TRUE(home.ok()) << home.error().message;
  EXPECT_EQ(*home, dir_ + "/configured");
  EXPECT_EQ(::access((dir_ + "/configured").c_str(), F_OK), 0);
  EXPECT_EQ(store::cache_dir(*home), dir_ + "/configured/cache");
  // Not configured: the environment again.
  ASSERT_TRUE(configure_runtime({}).ok());
  EXPECT_EQ(*store::moat_home(), dir_ + "/from-env");
  ::unsetenv("MOAT_HOME");
}

TEST_F(RuntimeOptionsTest, RelativePathsAreRefused) {
  RuntimeOptions options;
  options.home = "relative/home";
  auto st = configure_runtime(options);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(st.error().message, "runtime option home \"relative/home\": must be an absolute path");
  // Nothing of a refused configuration is applied.
  EXPECT_EQ(runtime_options().home, "");
}

TEST_F(RuntimeOptionsTest, ConfiguredFilesAreWhatTheVmLayerFinds) {
  RuntimeOptions options;
  options.qemu = "/bin/true";
  options.kernel = dir_ + "/missing-vmlinux";
  ASSERT_TRUE(configure_runtime(options).ok());
  auto qemu = vm::find_qemu();
  ASSERT_TRUE(qemu.ok()) << qemu.error().message;
  EXPECT_EQ(*qemu, "/bin/true");
  auto kernel = vm::find_kernel();
  ASSERT_FALSE(kernel.ok());
  EXPECT_EQ(kernel.error().message, "guest kernel " + dir_ + "/missing-vmlinux (from the runtime options) does not exist");

  RuntimeReport r = check_runtime();
  auto k = std::find_if(r.checks.begin(), r.checks.end(), [](const RuntimeCheck& c) { return c.what == "kernel"; });
  ASSERT_NE(k, r.checks.end());
  EXPECT_FALSE(k->ok);
  EXPECT_FALSE(r.ready());
}

TEST_F(RuntimeOptionsTest, MessagesGoToTheConfiguredSink) {
  std::vector<std::pair<LogLevel, std::string>> got;
  RuntimeOptions o;
  o.log = [&](LogLevel l, std::string_view m) { got.emplace_back(l, std::string(m)); };
  ASSERT_TRUE(configure_runtime(o).ok());
  util::runtime_log(LogLevel::kWarning, "sandbox x crashed: y");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, LogLevel::kWarning);
  EXPECT_EQ(got[0].second, "sandbox x crashed: y");
  ASSERT_TRUE(configure_runtime({}).ok());
  util::runtime_log(LogLevel::kWarning, "dropped");
  EXPECT_EQ(got.size(), 1u);
}

}  // namespace
}  // namespace moat
