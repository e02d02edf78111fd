// util/write_file_atomic.h: the one way a small file (credentials, a
// sandbox's secrets) is replaced whole with a given mode.
#include "util/write_file_atomic.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace moat {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "moat-atomic-XXXXXX").string();
    path_ = ::mkdtemp(templ.data()) ? templ : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ~0u;
  return st.st_mode & 07777;
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

// The umask cannot take bits away from the mode asked for.
class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t mask) : old_(::umask(mask)) {}
  ~UmaskGuard() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST(WriteFileAtomic, WritesTheBytesExactlyWithTheMode) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string path = dir / "auth.json";
  std::string bytes("{\"a\":1}\n\0\xff tail", 15);
  ASSERT_TRUE(write_file_atomic(path, bytes, 0600).ok());
  EXPECT_EQ(slurp(path), bytes);
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"auth.json"}) << "no temporary file is left";

  UmaskGuard mask(0077);
  ASSERT_TRUE(write_file_atomic(dir / "shared", "x", 0644).ok());
  EXPECT_EQ(mode_of(dir / "shared"), 0644u);
  ASSERT_TRUE(write_file_atomic(dir / "empty", "", 0600).ok());
  EXPECT_EQ(slurp(dir / "empty"), "");
}

TEST(WriteFileAtomic, ReplacesAnExistingFile) {
  TempDir dir;
  std::string path = dir / "secrets.json";
  std::ofstream(path) << "the old contents, longer than the new ones";
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  ASSERT_TRUE(write_file_atomic(path, "new", 0600).ok());
  EXPECT_EQ(slurp(path), "new");
  EXPECT_EQ(mode_of(path), 0600u) << "the new file's mode, not the old one's";
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_NE(after.st_ino, before.st_ino) << "renamed over, not rewritten in place";
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"secrets.json"});
}

TEST(WriteFileAtomic, AMissingDirectoryIsAnErrorNamingThePath) {
  TempDir dir;
  std::string path = dir / "no-such-dir/auth.json";
  auto st = write_file_atomic(path, "x", 0600);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ENOENT);
  EXPECT_NE(st.error().message.find(path), std::string::npos) << st.error().message;
}

TEST(WriteFileAtomic, AFailedRenameLeavesTheOldFileAndNoTemporary) {
  TempDir dir;
  // A non-empty directory where the file should go: rename(2) refuses.
  std::string path = dir / "taken";
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  std::ofstream(path + "/inside") << "kept";
  auto st = write_file_atomic(path, "x", 0600);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find(path), std::string::npos) << st.error().message;
  EXPECT_EQ(slurp(path + "/inside"), "kept");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"taken"});
}

}  // namespace
}  // namespace moat
