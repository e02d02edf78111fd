// `moat logs -f` follows a capped log across the shim's rotations and a new
// boot's fresh file.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli/log_follower.h"

namespace moat::cli {
namespace {

std::string drained(LogFollower& f) {
  ::testing::internal::CaptureStdout();
  f.drain();
  std::fflush(stdout);
  return ::testing::internal::GetCapturedStdout();
}

TEST(CliLogFollower, FollowsAcrossRotationsAndANewBoot) {
  char tmpl[] = "/tmp/moat-follow-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/console.log";
  std::ofstream(path) << "printed already\n";
  LogFollower f(path);
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
}  // namespace moat::cli
