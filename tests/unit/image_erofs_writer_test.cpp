#include "image/erofs/erofs_writer.h"

#include <gtest/gtest.h>

#include <string>

#include "../image/erofs_check.h"
#include "image/erofs/erofs_dir.h"
#include "image/erofs/fs_tree.h"
#include "image/erofs/spool.h"

namespace moat::image {
namespace {

using testing::TempDir;

class ImageErofsWriter : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    auto spool = Spool::create(tmp_.path());
    ASSERT_TRUE(spool.ok()) << spool.error().message;
    spool_.emplace(std::move(*spool));
  }

  InodePtr add(Inode& dir, const std::string& name, FileType type, std::uint32_t mode) {
    auto inode = make_inode(type, mode);
    inode->mtime = {1700000000, 0};
    dir.children[name] = inode;
    return inode;
  }

  InodePtr add_file(Inode& dir, const std::string& name, const std::string& data,
                    std::uint32_t mode = 0644) {
    auto inode = add(dir, name, FileType::kRegular, mode);
    auto ref = spool_->add(data);
    EXPECT_TRUE(ref.ok());
    inode->content = *ref;
    return inode;
  }

  // Writes the image, checks it with fsck.erofs, mounts it and compares.
  void check_image(const FsTree& tree, std::string* bytes = nullptr) {
    std::string image = tmp_ / "image.erofs";
    auto stats = testing::write_image(tree, *spool_, image);
    ASSERT_TRUE(stats.ok()) << stats.error().message;
    if (bytes) *bytes = testing::read_file(image);
    if (testing::have_fsck_erofs()) {
      EXPECT_EQ(testing::fsck_erofs(image), "");
    }
    if (!testing::can_mount_erofs()) {
      GTEST_SKIP() << "cannot mount erofs here (needs root and the erofs module)";
    }
    std::string mnt = tmp_ / "mnt";
    testing::Mount mount(image, mnt);
    ASSERT_TRUE(mount.ok()) << "kernel refused the image";
    testing::TreeComparer cmp(*spool_);
    cmp.count_links(tree.root());
    cmp.compare(tree.root(), mnt);
    cmp.check_nlink();
  }

  TempDir tmp_;
  std::optional<Spool> spool_;
};

std::string pattern(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + i / 4096) & 0xff);
  return s;
}

TEST_F(ImageErofsWriter, EveryFileTypeAndAttribute) {
  FsTree tree;
  Inode& root = tree.root();
  root.mtime = {1700000000, 0};
  for (std::size_t size : {0u, 1u, 100u, 4095u, 4096u, 4097u, 8192u, 10000u, 70000u}) {
    add_file(root, "file" + std::to_string(size), pattern(size, static_cast<unsigned>(size)));
  }
  auto dir = add(root, "dir", FileType::kDirectory, 0750);
  dir->uid = 1000;
  dir->gid = 1000;
  auto suid = add_file(*dir, "suid", "x", 04755);
  suid->xattrs["security.capability"] =
      std::string("\x00\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  add_file(*dir, "sgid", "y", 02711);
  auto sticky = add(root, "tmp", FileType::kDirectory, 01777);
  auto big_ids = add_file(*sticky, "bigids", "z", 0600);
  big_ids->uid = 100000;
  big_ids->gid = 4000000000u;
  auto nsec = add_file(root, "nsec", "n");
  nsec->mtime = {1234567890, 987654321};
  auto future = add_file(root, "future", "f");
  future->mtime = {5000000000LL, 1};
  auto link = add(root, "link", FileType::kSymlink, 0777);
  link->symlink_target = "dir/suid";
  auto long_link = add(root, "longlink", FileType::kSymlink, 0777);
  long_link->symlink_target = std::string(4000, 'a');
  auto block_link = add(root, "blocklink", FileType::kSymlink, 0777);
  block_link->symlink_target = std::string(4095, 'b');
  auto null = add(root, "null", FileType::kCharDevice, 0666);
  null->rdev_major = 1;
  null->rdev_minor = 3;
  auto wide = add(root, "wide", FileType::kCharDevice, 0600);
  wide->rdev_major = 4095;
  wide->rdev_minor = 0xFFFFF;
  auto disk = add(root, "sda", FileType::kBlockDevice, 0660);
  disk->rdev_major = 8;
  disk->rdev_minor = 1;
  disk->gid = 6;
  add(root, "fifo", FileType::kFifo, 0644);
  add(root, "sock", FileType::kSocket, 0755);
  auto xa = add_file(root, "xattrs", "data");
  xa->xattrs["user.one"] = "1";
  xa->xattrs["user.empty"] = "";
  xa->xattrs["trusted.t"] = std::string(300, 't');
  xa->xattrs["security.selinux"] = "system_u:object_r:bin_t:s0";
  auto xd = add(root, "xdir", FileType::kDirectory, 0755);
  xd->xattrs["user.dir"] = "d";
  // The same pair on several inodes goes to the shared area.
  for (int i = 0; i < 3; ++i) {
    auto f = add_file(*xd, "s" + std::to_string(i), "s");
    f->xattrs["user.shared"] = "same value";
    f->xattrs["user.own"] = std::to_string(i);
  }
  check_image(tree);
}

TEST_F(ImageErofsWriter, LargeXattrsAndOddTimes) {
  FsTree tree;
  // Xattr bodies larger than a block straddle block boundaries; the tail of
  // such a file cannot be inline and goes to a data block.
  for (int i = 0; i < 4; ++i) {
    auto f = add_file(tree.root(), "big-xattrs" + std::to_string(i), pattern(5000 + i, i));
    f->xattrs["user.a"] = std::string(4000, 'a');
    f->xattrs["user.b"] = std::string(3000 + i, 'b');
    f->xattrs["trusted.c" + std::to_string(i)] = std::string(65535, static_cast<char>('c' + i));
  }
  auto d = add(tree.root(), "xdir", FileType::kDirectory, 0755);
  d->xattrs["user.big"] = std::string(9000, 'd');
  for (int i = 0; i < 200; ++i) add_file(*d, "child" + std::to_string(i), "c");
  auto old = add_file(tree.root(), "before-1970", "old");
  old->mtime = {-86400 * 365, 500};
  auto epoch = add_file(tree.root(), "epoch", "e");
  epoch->mtime = {0, 0};
  // Many inodes share one mtime (compact); the root differs (extended).
  tree.root().mtime = {1, 999999999};
  check_image(tree);
}

TEST_F(ImageErofsWriter, HardlinksShareOneInode) {
  FsTree tree;
  auto a = add(tree.root(), "a", FileType::kDirectory, 0755);
  auto b = add(tree.root(), "b", FileType::kDirectory, 0755);
  auto file = add_file(*a, "orig", "hello hardlinks");
  b->children["alias"] = file;
  tree.root().children["top"] = file;
  auto dev = add(*a, "dev", FileType::kCharDevice, 0600);
  dev->rdev_major = 5;
  b->children["dev2"] = dev;
  auto sym = add(*a, "sym", FileType::kSymlink, 0777);
  sym->symlink_target = "orig";
  b->children["sym2"] = sym;
  check_image(tree);
}

TEST_F(ImageErofsWriter, LongNamesDeepPathsAndBigDirectories) {
  FsTree tree;
  Inode* dir = &tree.root();
  for (int depth = 0; depth < 40; ++depth) {
    auto sub = add(*dir, std::string(60, static_cast<char>('a' + depth % 26)) + std::to_string(depth),
                   FileType::kDirectory, 0755);
    dir = sub.get();
  }
  add_file(*dir, "leaf", "deep");
  add_file(tree.root(), std::string(255, 'L'), "long name");
  add_file(tree.root(), "\xc3\xa9t\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac", "utf-8");
  auto big = add(tree.root(), "big", FileType::kDirectory, 0755);
  // Names that sort around "." and ".." and long names force many blocks.
  for (const char* n : {"-", "!", ".-x", ".a", "..a", "\xff", " "}) add_file(*big, n, n);
  for (int i = 0; i < 3000; ++i) {
    std::string name = "entry-" + std::to_string(i * 7919 % 10007);
    if (i % 10 == 0) name += std::string(200, 'x');
    add_file(*big, name, i % 3 ? "" : name);
  }
  check_image(tree);
  auto dirents = erofs::sorted_dirents(*big, tree.root());
  EXPECT_GT(erofs::pack_dir_blocks(dirents).size(), 20u);
}

TEST_F(ImageErofsWriter, DeterministicOutput) {
  auto build = [&](std::string* bytes) {
    FsTree tree;
    for (int i = 0; i < 50; ++i) {
      auto f = add_file(tree.root(), "f" + std::to_string(i), pattern(i * 300, i));
      f->mtime = {1600000000 + i % 3, 0};
      if (i % 7 == 0) f->xattrs["user.x"] = "y";
    }
    check_image(tree, bytes);
  };
  std::string first, second;
  build(&first);
  build(&second);
  EXPECT_FALSE(first.empty());
  EXPECT_TRUE(first == second);
}

TEST_F(ImageErofsWriter, FileLargerThan4GiBStaysSparse) {
  FsTree tree;
  auto f = add(tree.root(), "huge", FileType::kRegular, 0644);
  spool_->begin();
  std::string zeros(1 << 20, '\0');
  const std::uint64_t size = (std::uint64_t{4} << 30) + 12345;
  for (std::uint64_t done = 0; done < size;) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), size - done - 5));
    if (n == 0) break;
    ASSERT_TRUE(spool_->append(zeros.data(), n).ok());
    done += n;
  }
  ASSERT_TRUE(spool_->append("tail!", 5).ok());
  auto ref = spool_->finish();
  ASSERT_TRUE(ref.ok());
  ASSERT_EQ(ref->size, size);
  f->content = *ref;
  std::string image = tmp_ / "image.erofs";
  ASSERT_TRUE(testing::write_image(tree, *spool_, image).ok());
  struct stat st {};
  ASSERT_EQ(::stat(image.c_str(), &st), 0);
  EXPECT_GT(static_cast<std::uint64_t>(st.st_size), size);
  EXPECT_LT(static_cast<std::uint64_t>(st.st_blocks) * 512, 1u << 20) << "image not sparse";
  if (!testing::can_mount_erofs()) GTEST_SKIP();
  testing::Mount mount(image, tmp_ / "mnt");
  ASSERT_TRUE(mount.ok());
  std::string path = tmp_ / "mnt/huge";
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), size);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  char buf[5];
  ASSERT_EQ(::pread(fd.get(), buf, 5, static_cast<off_t>(size - 5)), 5);
  EXPECT_EQ(std::string(buf, 5), "tail!");
}

TEST_F(ImageErofsWriter, RejectsInvalidTrees) {
  std::string image = tmp_ / "bad.erofs";
  {
    FsTree tree;
    auto d = add(tree.root(), "d", FileType::kDirectory, 0755);
    tree.root().children["again"] = d;
    EXPECT_FALSE(testing::write_image(tree, *spool_, image).ok());
  }
  {
    FsTree tree;
    add_file(tree.root(), "a/b", "x");
    EXPECT_FALSE(testing::write_image(tree, *spool_, image).ok());
  }
  {
    FsTree tree;
    add_file(tree.root(), "f", "x")->xattrs["system.nfs4_acl"] = "x";
    EXPECT_FALSE(testing::write_image(tree, *spool_, image).ok());
  }
  {
    FsTree tree;
    auto dev = add(tree.root(), "dev", FileType::kCharDevice, 0600);
    dev->rdev_major = 4096;
    EXPECT_FALSE(testing::write_image(tree, *spool_, image).ok());
  }
  {
    FsTree tree;
    add(tree.root(), "empty-link", FileType::kSymlink, 0777);
    EXPECT_FALSE(testing::write_image(tree, *spool_, image).ok());
  }
}

}  // namespace
}  // namespace moat::image
