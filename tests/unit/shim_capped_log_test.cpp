#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "shim_contract/capped_log.h"

namespace moat::shim {
namespace {

class CappedLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-capped-log-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/console.log";
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  static long long size_of(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : -1;
  }
  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string dir_;
  std::string path_;
};

TEST_F(CappedLogTest, RotatesBeforeAWriteThatWouldPassTheCap) {
  auto log = CappedLog::open(path_, 4096, CappedLog::Start::kFresh);
  ASSERT_TRUE(log.ok()) << log.error().message;
  std::string line(1000, 'a');
  line.back() = '\n';
  for (int i = 0; i < 4; ++i) log->write(line);
  EXPECT_EQ(size_of(path_), 4000);
  EXPECT_EQ(size_of(rotated_log_path(path_)), -1);
  log->write("b\n");  // 4002 fits
  log->write(line);   // would be 5002: a new file, the line whole in it
  EXPECT_EQ(size_of(rotated_log_path(path_)), 4002);
  EXPECT_EQ(read(path_), line);
}

TEST_F(CappedLogTest, NoAmountOfTextTakesEitherFilePastTheCap) {
  auto log = CappedLog::open(path_, 4096, CappedLog::Start::kFresh);
  ASSERT_TRUE(log.ok());
  std::string text;
  for (int i = 0; i < 20000; ++i) text += std::to_string(i) + "\n";
  log->write(text);  // one write of ~100 KiB
  for (int i = 0; i < 300; ++i) log->write(std::string(777, 'z'));
  EXPECT_LE(size_of(path_), 4096);
  EXPECT_LE(size_of(rotated_log_path(path_)), 4096);
  EXPECT_EQ(read(path_).back(), 'z');
}

TEST_F(CappedLogTest, TheNewestTextOfAnOversizedWriteIsKept) {
  auto log = CappedLog::open(path_, 4096, CappedLog::Start::kFresh);
  ASSERT_TRUE(log.ok());
  std::string text;
  for (int i = 0; i < 3000; ++i) text += std::to_string(i) + "\n";
  log->write(text);
  std::string kept = read(rotated_log_path(path_)) + read(path_);
  EXPECT_EQ(kept, text.substr(text.size() - kept.size()));
  EXPECT_EQ(capped_log_read_all(path_), kept);
}

TEST_F(CappedLogTest, TailReachesIntoTheOlderGeneration) {
  auto log = CappedLog::open(path_, 4096, CappedLog::Start::kFresh);
  ASSERT_TRUE(log.ok());
  log->write(std::string(4000, 'o') + "\n");
  log->write("new line\n");  // rotates
  EXPECT_EQ(capped_log_tail(path_, 14), "oooo\nnew line");
  EXPECT_EQ(capped_log_tail(path_, 9), "new line");  // the newline counts, then goes
  EXPECT_EQ(capped_log_tail(dir_ + "/missing.log", 100), "");
}

TEST_F(CappedLogTest, FreshStartDropsBothGenerationsAppendKeepsThem) {
  std::ofstream(path_) << "old boot\n";
  std::ofstream(rotated_log_path(path_)) << "older\n";
  {
    auto kept = CappedLog::open(path_, 4096, CappedLog::Start::kAppend);
    ASSERT_TRUE(kept.ok());
    kept->write("more\n");
  }
  EXPECT_EQ(capped_log_read_all(path_), "older\nold boot\nmore\n");
  auto fresh = CappedLog::open(path_, 4096, CappedLog::Start::kFresh);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(size_of(path_), 0);
  EXPECT_EQ(size_of(rotated_log_path(path_)), -1);
}

TEST_F(CappedLogTest, AFileAlreadyOverTheCapIsRotatedWhenOpened) {
  std::ofstream(path_) << std::string(10000, 'q');
  auto log = CappedLog::open(path_, 4096, CappedLog::Start::kAppend);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(size_of(path_), 0);
  EXPECT_EQ(size_of(rotated_log_path(path_)), 10000);  // moved, never grown
  log->write("x\n");
  EXPECT_EQ(read(path_), "x\n");
}

TEST_F(CappedLogTest, WritesByOthersToTheSameFileCountTowardsTheCap) {
  auto log = CappedLog::open(path_, 4096, CappedLog::Start::kFresh);
  ASSERT_TRUE(log.ok());
  std::ofstream(path_, std::ios::app) << std::string(4090, 's');
  log->write("0123456789\n");
  EXPECT_EQ(read(path_), "0123456789\n");
  EXPECT_EQ(size_of(rotated_log_path(path_)), 4090);
}

TEST_F(CappedLogTest, TheFollowerOfARotationGetsTheNewDescriptor) {
  auto log = CappedLog::open(path_, 4096, CappedLog::Start::kFresh);
  ASSERT_TRUE(log.ok());
  int seen = -1;
  log->on_reopen([&](int fd) { seen = fd; });
  log->write(std::string(4096, 'a'));
  EXPECT_EQ(seen, -1);
  log->write("b");
  EXPECT_EQ(seen, log->fd());
}

}  // namespace
}  // namespace moat::shim
