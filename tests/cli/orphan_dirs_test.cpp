// Sandbox directories that no record names: a create killed between making
// the directory and inserting its record leaves one, and `moat ls` removes
// it once it is a few seconds old. A young one (a create under way) and one
// whose op.lock is held stay.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

std::string make_dir(const std::string& id, bool old) {
  std::string sandboxes = test_home() + "/sandboxes";
  ::mkdir(sandboxes.c_str(), 0700);
  std::string dir = sandboxes + "/" + id;
  EXPECT_EQ(::mkdir(dir.c_str(), 0700), 0) << dir;
  int fd = ::open((dir + "/op.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0);
  ::close(fd);
  if (old) {
    struct timeval minute_ago[2] = {{::time(nullptr) - 60, 0}, {::time(nullptr) - 60, 0}};
    EXPECT_EQ(::utimes(dir.c_str(), minute_ago), 0);
  }
  return dir;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

TEST(OrphanDirs, LsRemovesOldDirectoriesWithoutRecords) {
  ASSERT_EQ(run_moat({"ls", "-q"}).exit_code, 0);  // makes the home and its database
  std::string orphan = make_dir("0rphan0000000001", true);
  std::string young = make_dir("0rphan0000000002", false);
  std::string busy = make_dir("0rphan0000000003", true);
  int lock = ::open((busy + "/op.lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_EQ(::flock(lock, LOCK_EX), 0);  // as a create still running would hold it

  auto ls = run_moat({"ls", "-q"});
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(ls.out, "");
  EXPECT_FALSE(exists(orphan));
  EXPECT_TRUE(exists(young));
  EXPECT_TRUE(exists(busy));
  ::close(lock);
  ASSERT_EQ(run_moat({"ls", "-q"}).exit_code, 0);
  EXPECT_FALSE(exists(busy));
  EXPECT_TRUE(exists(young));
  std::filesystem::remove_all(young);
}

}  // namespace
}  // namespace moat::test
