// Durations in include/moat (moat/duration.h): one type, and the library,
// not the front end, refuses the ones it cannot honour. No VM: each is
// refused before anything is made.
#include <stdlib.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <string>

#include "moat/runtime.h"
#include "moat/sandboxes.h"
#include "store/moat_home.h"

namespace moat {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class PublicDurationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-duration-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    RuntimeOptions options;
    options.home = dir_;
    ASSERT_TRUE(configure_runtime(options).ok());
  }
  void TearDown() override {
    ASSERT_TRUE(configure_runtime({}).ok());
    (void)store::remove_tree(dir_);
  }
  std::string dir_;
};

void expect_refused(const SandboxOptions& o, const std::string& message) {
  auto r = create_sandbox(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EINVAL);
  EXPECT_EQ(r.error().message, message);
}

TEST_F(PublicDurationTest, LimitsAreWholeSecondsUpToAYear) {
  SandboxOptions o;
  o.idle_timeout = milliseconds(1500);
  expect_refused(o, "--idle-timeout and --max-duration are whole seconds");
  o = SandboxOptions{};
  o.max_duration = seconds(-1);
  expect_refused(o, "--idle-timeout and --max-duration must be at most a year");
  o = SandboxOptions{};
  o.max_duration = std::chrono::hours(367 * 24);
  expect_refused(o, "--idle-timeout and --max-duration must be at most a year");
}

TEST_F(PublicDurationTest, BootAndStopTimeoutsAreBounded) {
  SandboxOptions o;
  o.boot_timeout = milliseconds(999);
  expect_refused(o, "boot timeout must be between 1 s and a day");
  o = SandboxOptions{};
  o.boot_timeout = std::chrono::hours(25);
  expect_refused(o, "boot timeout must be between 1 s and a day");
  o = SandboxOptions{};
  o.stop_timeout = milliseconds(-1);
  expect_refused(o, "stop timeout must be between 0 and a day");

  auto st = stop_sandbox("nothing-by-this-name", milliseconds(-5));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, EINVAL);
  EXPECT_EQ(st.error().message, "stop timeout must be between 0 and a day");
  // A valid timeout gets as far as looking the sandbox up.
  st = stop_sandbox("nothing-by-this-name", seconds(0));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ENOENT);
}

}  // namespace
}  // namespace moat
