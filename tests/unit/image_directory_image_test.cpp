// A host directory becomes an EROFS root with everything kept: checked by
// fsck.erofs and by the kernel's own mount of the image (root here).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>

#include "image/store/directory_image.h"
#include "../image/erofs_check.h"

namespace moat::image {
namespace {

using testing::Mount;
using testing::TempDir;

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(ImageDirectoryImage, KeepsTypesOwnersModesTimesXattrsAndHardlinks) {
  TempDir tmp;
  std::string src = tmp / "src";
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/dir").c_str(), 0710), 0);
  write(src + "/dir/file", "hello\n");
  // chown clears setuid, so it goes first.
  ASSERT_EQ(::chown((src + "/dir/file").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chmod((src + "/dir/file").c_str(), 04751), 0);
  ASSERT_EQ(::link((src + "/dir/file").c_str(), (src + "/hard").c_str()), 0);
  ASSERT_EQ(::symlink("dir/file", (src + "/link").c_str()), 0);
  ASSERT_EQ(::mknod((src + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(::mkfifo((src + "/fifo").c_str(), 0640), 0);
  ASSERT_EQ(::setxattr((src + "/dir/file").c_str(), "user.note", "v1", 2, 0), 0);
  struct timespec times[2] = {{0, UTIME_OMIT}, {1600000000, 123456789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (src + "/dir/file").c_str(), times, AT_SYMLINK_NOFOLLOW), 0);

  auto image = erofs_from_directory(src, tmp / "cache");
  ASSERT_TRUE(image.ok()) << image.error().message;
  EXPECT_EQ(testing::fsck_erofs(*image), "");
  // Built once: the same tree gives the cached path back.
  auto again = erofs_from_directory(src, tmp / "cache");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *image);

  ASSERT_EQ(::geteuid(), 0u) << "the kernel mount check needs root";
  Mount m(*image, tmp / "mnt");
  ASSERT_TRUE(m.ok());
  std::string mnt = tmp / "mnt";
  struct stat st {}, hard {};
  ASSERT_EQ(::lstat((mnt + "/dir/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFREG | 04751));
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_size, 6);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_EQ(::lstat((mnt + "/hard").c_str(), &hard), 0);
  EXPECT_EQ(hard.st_ino, st.st_ino);
  EXPECT_EQ(testing::read_file(mnt + "/hard"), "hello\n");
  char target[64] = {};
  ASSERT_EQ(::readlink((mnt + "/link").c_str(), target, sizeof(target)), 8);
  EXPECT_STREQ(target, "dir/file");
  ASSERT_EQ(::lstat((mnt + "/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  ASSERT_EQ(::lstat((mnt + "/fifo").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFIFO | 0640));
  ASSERT_EQ(::lstat((mnt + "/dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFDIR | 0710));
  char value[8] = {};
  ASSERT_EQ(::lgetxattr((mnt + "/dir/file").c_str(), "user.note", value, sizeof(value)), 2);
  EXPECT_STREQ(value, "v1");
}

TEST(ImageDirectoryImage, MissingDirectoryIsAnError) {
  TempDir tmp;
  auto r = erofs_from_directory(tmp / "nope", tmp / "cache");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nope"), std::string::npos);
}

}  // namespace
}  // namespace moat::image
