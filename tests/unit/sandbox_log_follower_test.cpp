// Following a capped log (`moat logs -f`) across the shim's rotations and a
// new boot's fresh file.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "sandbox/log_follower.h"

namespace moat::sandbox {
namespace {

std::string got;

std::string drained(LogFollower& f) {
  got.clear();
  f.drain();
  return got;
}

TEST(SandboxLogFollower, FollowsAcrossRotationsAndANewBoot) {
  char tmpl[] = "/tmp/moat-follow-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/console.log";
  std::ofstream(path) << "printed already\n";
  LogFollower f(path, [](std::string_view s) { got.append(s); });
  EXPECT_EQ(drained(f), "");
  std::ofstream(path, std::ios::app) << "one\n";
  EXPECT_EQ(drained(f), "one\n");
  // The shim rotates: the rest of the old file, then the new one.
  std::ofstream(path, std::ios::app) << "two\n";
  ASSERT_EQ(::rename(path.c_str(), (path + ".1").c_str()), 0);
  std::ofstream(path) << "three\n";
  EXPECT_EQ(drained(f), "two\nthree\n");
  // A new boot empties the file in place.
  std::ofstream(path, std::ios::trunc) << "boot\n";
  EXPECT_EQ(drained(f), "boot\n");
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace moat::sandbox
