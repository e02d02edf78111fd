// The snapshot content digest: the same for a disk however its zeros are
// stored (holes, written zero blocks, a copy), different for one changed
// byte or a different size.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "store/disk_digest.h"
#include "store/sparse_copy.h"

namespace moat::store {
namespace {

class DiskDigest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-disk-digest-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  // A 1 MiB file with `data` at `offset`, holes elsewhere (or written zeros).
  std::string make(const std::string& name, off_t offset, const std::string& data, bool zeros_written) {
    std::string path = dir_ + "/" + name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    if (zeros_written) {
      std::string zeros(1 << 20, '\0');
      EXPECT_EQ(::pwrite(fd, zeros.data(), zeros.size(), 0), static_cast<ssize_t>(zeros.size()));
    } else {
      EXPECT_EQ(::ftruncate(fd, 1 << 20), 0);
    }
    EXPECT_EQ(::pwrite(fd, data.data(), data.size(), offset), static_cast<ssize_t>(data.size()));
    ::close(fd);
    return path;
  }

  std::string dir_;
};

TEST_F(DiskDigest, HolesAndWrittenZerosDigestAlike) {
  auto sparse = make("sparse", 123456, "payload", false);
  auto full = make("full", 123456, "payload", true);
  auto a = disk_content_digest(sparse), b = disk_content_digest(full);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->rfind("sha256:", 0), 0u);
  ASSERT_TRUE(sparse_copy(sparse, dir_ + "/copy"));
  EXPECT_EQ(*disk_content_digest(dir_ + "/copy"), *a);
  auto alloc_sparse = allocated_bytes(sparse), alloc_full = allocated_bytes(full);
  ASSERT_TRUE(alloc_sparse && alloc_full);
  EXPECT_LT(*alloc_sparse, *alloc_full);
}

TEST_F(DiskDigest, ADifferentByteOrPlaceOrSizeChangesIt) {
  auto base = *disk_content_digest(make("a", 4096, "payload", false));
  EXPECT_NE(*disk_content_digest(make("b", 4096, "paYload", false)), base);
  EXPECT_NE(*disk_content_digest(make("c", 8192, "payload", false)), base);
  auto shorter = make("d", 4096, "payload", false);
  ASSERT_EQ(::truncate(shorter.c_str(), (1 << 20) - 4096), 0);
  EXPECT_NE(*disk_content_digest(shorter), base);
  EXPECT_FALSE(disk_content_digest(dir_ + "/missing"));
}

}  // namespace
}  // namespace moat::store
