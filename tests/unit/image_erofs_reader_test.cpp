#include "image/erofs/erofs_reader.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>

#include "../image/erofs_check.h"
#include "image/erofs/fs_tree.h"
#include "image/erofs/spool.h"

namespace moat::image {
namespace {

using testing::TempDir;

std::string pattern(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + i / 4096) & 0xff);
  return s;
}

std::map<std::string, std::string> to_map(const ErofsReader::Xattrs& x) {
  return {x.begin(), x.end()};
}

// Every entry of a directory through read_dir, "." and ".." included.
std::map<std::string, ErofsNid> list_dir(const ErofsReader& r, ErofsNid dir) {
  std::map<std::string, ErofsNid> out;
  auto st = r.read_dir(dir, [&](const ErofsDirent& e) {
    EXPECT_TRUE(out.emplace(std::string(e.name), e.nid).second) << "duplicate " << e.name;
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.error().message;
  return out;
}

std::string read_all(const ErofsReader& r, const ErofsInode& ino) {
  std::string data(ino.size, '\0');
  // Odd chunk sizes cross block and tail boundaries.
  std::size_t done = 0;
  while (done < data.size()) {
    auto n = r.read(ino, done, data.data() + done, std::min<std::size_t>(5003, data.size() - done));
    EXPECT_TRUE(n.ok()) << n.error().message;
    if (!n.ok() || *n == 0) break;
    done += *n;
  }
  data.resize(done);
  return data;
}

// Walks the reader from `nid` alongside an FsTree and compares everything.
class TreeMatcher {
 public:
  TreeMatcher(const ErofsReader& r, const Spool& spool) : r_(r), spool_(spool) {}

  void compare(const Inode& want, ErofsNid nid, ErofsNid parent, const std::string& path) {
    SCOPED_TRACE(path);
    auto got = r_.inode(nid);
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->nid, nid);
    EXPECT_EQ(got->mode & 07777, want.mode);
    EXPECT_EQ(got->type(), testing::type_bits(want.type));
    EXPECT_EQ(got->uid, want.uid);
    EXPECT_EQ(got->gid, want.gid);
    EXPECT_EQ(got->mtime_sec, want.mtime.sec);
    EXPECT_EQ(got->mtime_nsec, want.mtime.nsec);
    auto x = r_.xattrs(*got);
    ASSERT_TRUE(x.ok()) << x.error().message;
    EXPECT_EQ(to_map(*x), want.xattrs);
    auto [it, first] = nids_.emplace(&want, nid);
    EXPECT_EQ(it->second, nid) << "hardlink with a different nid";
    if (!want.is_dir()) ++links_[&want];
    if (!first) return;
    nlink_[&want] = got->nlink;
    switch (want.type) {
      case FileType::kRegular: {
        ASSERT_EQ(got->size, want.content.size);
        std::string expect(want.content.size, '\0');
        ASSERT_TRUE(spool_.read(want.content.offset, expect.data(), expect.size()).ok());
        EXPECT_TRUE(read_all(r_, *got) == expect) << "content differs";
        break;
      }
      case FileType::kSymlink: {
        auto target = r_.readlink(*got);
        ASSERT_TRUE(target.ok()) << target.error().message;
        EXPECT_EQ(*target, want.symlink_target);
        break;
      }
      case FileType::kCharDevice:
      case FileType::kBlockDevice:
        EXPECT_EQ(got->rdev_major(), want.rdev_major);
        EXPECT_EQ(got->rdev_minor(), want.rdev_minor);
        break;
      case FileType::kDirectory: {
        auto entries = list_dir(r_, nid);
        EXPECT_EQ(entries.size(), want.children.size() + 2);
        EXPECT_EQ(entries["."], nid);
        EXPECT_EQ(entries[".."], parent);
        std::size_t subdirs = 0;
        for (const auto& [name, child] : want.children) {
          ASSERT_TRUE(entries.count(name)) << "missing " << name;
          auto found = r_.lookup(nid, name);
          ASSERT_TRUE(found.ok()) << found.error().message;
          ASSERT_TRUE(found->has_value()) << "lookup missed " << name;
          EXPECT_EQ(**found, entries[name]);
          if (child->is_dir()) ++subdirs;
          compare(*child, entries[name], nid, path + "/" + name);
        }
        EXPECT_EQ(got->nlink, 2 + subdirs);
        auto none = r_.lookup(nid, "no-such-entry\x01");
        ASSERT_TRUE(none.ok());
        EXPECT_FALSE(none->has_value());
        break;
      }
      default: break;
    }
  }

  void check_nlink() {
    for (const auto& [inode, count] : links_) EXPECT_EQ(nlink_[inode], count);
  }

 private:
  const ErofsReader& r_;
  const Spool& spool_;
  std::map<const Inode*, ErofsNid> nids_;
  std::map<const Inode*, std::uint32_t> links_, nlink_;
};

// Visits everything reachable from `nid` and reports only whether it worked;
// bounded so a corrupt image with directory cycles still terminates.
Status walk(const ErofsReader& r, ErofsNid nid, int depth, std::size_t& budget) {
  if (depth > 64 || budget == 0) return ok_status();
  --budget;
  MOAT_ASSIGN_OR_RETURN(ErofsInode ino, r.inode(nid));
  MOAT_TRY(r.xattrs(ino));
  if (ino.is_regular()) {
    char buf[8192];
    for (std::uint64_t off = 0; off < ino.size && off < (1u << 20); off += sizeof buf) {
      MOAT_TRY(r.read(ino, off, buf, sizeof buf));
    }
  } else if (ino.is_symlink()) {
    MOAT_TRY(r.readlink(ino));
  } else if (ino.is_dir()) {
    std::vector<std::pair<std::string, ErofsNid>> children;
    MOAT_TRY(r.read_dir(ino, [&](const ErofsDirent& e) {
      if (e.name != "." && e.name != "..") children.emplace_back(std::string(e.name), e.nid);
      return children.size() < 10000;
    }));
    for (const auto& [name, child] : children) {
      MOAT_TRY(r.lookup(ino, name));
      MOAT_TRY(walk(r, child, depth + 1, budget));
    }
  }
  return ok_status();
}

class ImageErofsReader : public ::testing::Test {
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

  std::string write(const FsTree& tree) {
    std::string image = tmp_ / "image.erofs";
    auto stats = testing::write_image(tree, *spool_, image);
    EXPECT_TRUE(stats.ok()) << stats.error().message;
    return image;
  }

  void check(const FsTree& tree) {
    std::string image = write(tree);
    auto r = ErofsReader::open(image);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->root_nid(), 36u);
    TreeMatcher m(*r, *spool_);
    m.compare(tree.root(), r->root_nid(), r->root_nid(), "");
    m.check_nlink();
  }

  // A tree with every kind of inode, layout and xattr moat writes.
  FsTree rich_tree() {
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
    suid->xattrs["security.capability"] = std::string("\x00\x00\x00\x02\x01\x00\x00\x00", 8);
    auto big_ids = add_file(*dir, "bigids", "z", 0600);
    big_ids->uid = 100000;
    big_ids->gid = 4000000000u;
    auto nsec = add_file(root, "nsec", "n");
    nsec->mtime = {1234567890, 987654321};
    auto old = add_file(root, "before-1970", "old");
    old->mtime = {-86400 * 365, 500};
    auto link = add(root, "link", FileType::kSymlink, 0777);
    link->symlink_target = "dir/suid";
    add(root, "longlink", FileType::kSymlink, 0777)->symlink_target = std::string(4095, 'b');
    auto null = add(root, "null", FileType::kCharDevice, 0666);
    null->rdev_major = 1;
    null->rdev_minor = 3;
    auto wide = add(root, "wide", FileType::kBlockDevice, 0600);
    wide->rdev_major = 4095;
    wide->rdev_minor = 0xFFFFF;
    add(root, "fifo", FileType::kFifo, 0644);
    add(root, "sock", FileType::kSocket, 0755);
    auto xa = add_file(root, "xattrs", "data");
    xa->xattrs["user.one"] = "1";
    xa->xattrs["user.empty"] = "";
    xa->xattrs["trusted.t"] = std::string(300, 't');
    xa->xattrs["security.selinux"] = "system_u:object_r:bin_t:s0";
    auto xd = add(root, "xdir", FileType::kDirectory, 0755);
    xd->xattrs["user.big"] = std::string(9000, 'd');
    for (int i = 0; i < 3; ++i) {
      auto f = add_file(*xd, "s" + std::to_string(i), pattern(5000 + i, i));
      f->xattrs["user.shared"] = "same value";
      f->xattrs["user.own"] = std::to_string(i);
      f->xattrs["trusted.c"] = std::string(65535, static_cast<char>('c' + i));
    }
    auto b = add(root, "b", FileType::kDirectory, 0755);
    b->children["alias"] = suid;
    b->children["null2"] = null;
    b->children["link2"] = link;
    return tree;
  }

  TempDir tmp_;
  std::optional<Spool> spool_;
};

TEST_F(ImageErofsReader, ReadsEverythingMoatWrites) { check(rich_tree()); }

TEST_F(ImageErofsReader, BigDirectoriesLongNamesDeepPaths) {
  FsTree tree;
  Inode* dir = &tree.root();
  std::string deep;
  for (int depth = 0; depth < 40; ++depth) {
    std::string name = std::string(60, static_cast<char>('a' + depth % 26)) + std::to_string(depth);
    dir = add(*dir, name, FileType::kDirectory, 0755).get();
    deep += "/" + name;
  }
  add_file(*dir, "leaf", "deep");
  add_file(tree.root(), std::string(255, 'L'), "long name");
  auto big = add(tree.root(), "big", FileType::kDirectory, 0755);
  for (const char* n : {"-", "!", ".-x", ".a", "..a", "\xff", " "}) add_file(*big, n, n);
  for (int i = 0; i < 3000; ++i) {
    std::string name = "entry-" + std::to_string(i * 7919 % 10007);
    if (i % 10 == 0) name += std::string(200, 'x');
    add_file(*big, name, i % 3 ? "" : name);
  }
  check(tree);

  auto r = ErofsReader::open(tmp_ / "image.erofs");
  ASSERT_TRUE(r.ok());
  auto leaf = r->lookup_path(deep + "/leaf");
  ASSERT_TRUE(leaf.ok()) << leaf.error().message;
  char buf[8];
  auto n = r->read(*leaf, 0, buf, sizeof buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(buf, *n), "deep");
  // "." components and repeated slashes are harmless; ".." is an entry.
  auto same = r->lookup_path("//big/./../big/\xff");
  ASSERT_TRUE(same.ok()) << same.error().message;
  EXPECT_EQ(*same, **r->lookup(*r->lookup_path("big"), "\xff"));
  EXPECT_EQ(r->lookup_path("/").value(), r->root_nid());
  EXPECT_EQ(r->lookup_path("/big/nothing").error().code, ENOENT);
  EXPECT_EQ(r->lookup_path("/big/-/x").error().code, ENOTDIR);

  // Resuming read_dir at every reported offset gives the rest of the listing.
  auto big_nid = *r->lookup_path("/big");
  std::vector<std::pair<std::string, std::uint64_t>> all;
  ASSERT_TRUE(r->read_dir(big_nid, [&](const ErofsDirent& e) {
                 all.emplace_back(std::string(e.name), e.next_offset);
                 return true;
               }).ok());
  ASSERT_EQ(all.size(), 3009u);
  for (std::size_t i : {0ul, 1ul, 100ul, 1500ul, 3007ul, 3008ul}) {
    std::vector<std::string> rest;
    ASSERT_TRUE(r->read_dir(big_nid, [&](const ErofsDirent& e) {
                   rest.emplace_back(e.name);
                   return true;
                 }, all[i].second).ok());
    ASSERT_EQ(rest.size(), all.size() - i - 1) << i;
    if (!rest.empty()) {
      EXPECT_EQ(rest.front(), all[i + 1].first);
    }
  }
}

TEST_F(ImageErofsReader, SymlinksAreNeverFollowed) {
  FsTree tree;
  auto d = add(tree.root(), "d", FileType::kDirectory, 0755);
  add_file(*d, "f", "x");
  add(tree.root(), "ld", FileType::kSymlink, 0777)->symlink_target = "d";
  add(tree.root(), "abs", FileType::kSymlink, 0777)->symlink_target = "/d";
  auto r = ErofsReader::open(write(tree));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lookup_path("/ld/f").error().code, ENOTDIR);
  EXPECT_EQ(r->lookup_path("abs/f").error().code, ENOTDIR);
  auto ld = r->lookup_path("/ld");
  ASSERT_TRUE(ld.ok());
  EXPECT_TRUE(r->inode(*ld)->is_symlink());
  EXPECT_EQ(*r->readlink(*ld), "d");
  EXPECT_EQ(r->lookup(*ld, "f").error().code, ENOTDIR);
  EXPECT_EQ(r->read_dir(*ld, [](const ErofsDirent&) { return true; }).error().code, ENOTDIR);
}

// Writes files into a directory on disk for mkfs.erofs.
void make_host_tree(const std::string& root) {
  namespace fs = std::filesystem;
  fs::create_directories(root + "/sub/deeper");
  auto put = [](const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary) << data;
  };
  for (std::size_t size : {0u, 1u, 4095u, 4096u, 4097u, 12288u, 100000u}) {
    put(root + "/f" + std::to_string(size), pattern(size, static_cast<unsigned>(size) + 1));
  }
  put(root + "/sub/deeper/x", "x");
  for (int i = 0; i < 500; ++i) put(root + "/sub/n" + std::to_string(i) + std::string(i % 50, 'q'), std::to_string(i));
  ASSERT_EQ(::link((root + "/f1").c_str(), (root + "/sub/hard").c_str()), 0);
  ASSERT_EQ(::symlink("f1", (root + "/sym").c_str()), 0);
  ASSERT_EQ(::symlink(std::string(3000, 's').c_str(), (root + "/longsym").c_str()), 0);
  ASSERT_EQ(::setxattr((root + "/f1").c_str(), "user.k", "v", 1, 0), 0);
  ASSERT_EQ(::setxattr((root + "/f1").c_str(), "trusted.big", std::string(2000, 'b').data(), 2000, 0), 0);
  ASSERT_EQ(::setxattr((root + "/sub").c_str(), "user.k", "v", 1, 0), 0);
  ASSERT_EQ(::mkfifo((root + "/fifo").c_str(), 0640), 0);
  ASSERT_EQ(::mknod((root + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(::lchown((root + "/f4096").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::lchown((root + "/f4097").c_str(), 123456, 70000), 0);
  struct timespec times[2] = {{0, UTIME_OMIT}, {1500000000, 123456789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (root + "/f0").c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
}

// Compares the reader against the source directory of mkfs.erofs.
void compare_host(const ErofsReader& r, ErofsNid nid, const std::string& path, bool mtimes,
                  std::map<ino_t, ErofsNid>& inos) {
  SCOPED_TRACE(path);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  auto ino = r.inode(nid);
  ASSERT_TRUE(ino.ok()) << ino.error().message;
  EXPECT_EQ(ino->mode, st.st_mode);
  EXPECT_EQ(ino->uid, st.st_uid);
  EXPECT_EQ(ino->gid, st.st_gid);
  if (mtimes) {
    EXPECT_EQ(ino->mtime_sec, st.st_mtim.tv_sec);
    EXPECT_EQ(ino->mtime_nsec, st.st_mtim.tv_nsec);
  }
  auto [it, first] = inos.emplace(st.st_ino, nid);
  EXPECT_EQ(it->second, nid);
  if (!S_ISDIR(st.st_mode)) {
    EXPECT_EQ(ino->nlink, st.st_nlink);
  }
  auto x = r.xattrs(*ino);
  ASSERT_TRUE(x.ok()) << x.error().message;
  EXPECT_EQ(to_map(*x), testing::list_xattrs(path));
  if (S_ISREG(st.st_mode)) {
    EXPECT_TRUE(read_all(r, *ino) == testing::read_file(path));
  } else if (S_ISLNK(st.st_mode)) {
    char buf[4096];
    ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
    EXPECT_EQ(r.readlink(*ino).value(), std::string(buf, static_cast<std::size_t>(n)));
  } else if (S_ISCHR(st.st_mode)) {
    EXPECT_EQ(ino->rdev_major(), major(st.st_rdev));
    EXPECT_EQ(ino->rdev_minor(), minor(st.st_rdev));
  } else if (S_ISDIR(st.st_mode)) {
    auto entries = list_dir(r, nid);
    std::set<std::string> want{".", ".."};
    for (const auto& e : std::filesystem::directory_iterator(path)) want.insert(e.path().filename());
    std::set<std::string> got;
    for (const auto& [name, n] : entries) got.insert(name);
    EXPECT_EQ(got, want);
    for (const auto& [name, child] : entries) {
      if (name == "." || name == "..") continue;
      EXPECT_EQ(r.lookup(nid, name).value(), child);
      compare_host(r, child, path + "/" + name, mtimes, inos);
    }
  }
}

TEST_F(ImageErofsReader, ReadsMkfsErofsImages) {
  ASSERT_TRUE(testing::have_fsck_erofs()) << "erofs-utils missing";
  std::string src = tmp_ / "src";
  make_host_tree(src);
  // Default options keep per-file mtimes (extended inodes where they differ);
  // -T gives every inode one time, so most are compact.
  for (std::string opts : {"", "-T1700000000"}) {
    SCOPED_TRACE(opts);
    std::string image = tmp_ / "mkfs.erofs";
    ASSERT_EQ(testing::run_quiet("mkfs.erofs " + opts + " " + image + " " + src), 0);
    auto r = ErofsReader::open(image);
    ASSERT_TRUE(r.ok()) << r.error().message;
    std::map<ino_t, ErofsNid> inos;
    compare_host(*r, r->root_nid(), src, opts.empty(), inos);
    if (!opts.empty()) {
      auto ino = r->inode(*r->lookup_path("/f0"));
      EXPECT_EQ(ino->mtime_sec, 1700000000);
    }
  }
}

TEST_F(ImageErofsReader, RejectsChunkBasedFilesPerInode) {
  std::string src = tmp_ / "src";
  std::filesystem::create_directories(src);
  std::ofstream(src + "/big", std::ios::binary) << pattern(20000, 3);
  std::ofstream(src + "/small", std::ios::binary) << "";
  std::string image = tmp_ / "chunk.erofs";
  ASSERT_EQ(testing::run_quiet("mkfs.erofs --chunksize=4096 " + image + " " + src), 0);
  auto r = ErofsReader::open(image);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto big = r->lookup(r->root_nid(), "big");
  ASSERT_TRUE(big.ok() && big->has_value());
  EXPECT_EQ(r->inode(**big).error().code, ENOTSUP);
}

TEST_F(ImageErofsReader, RejectsBrokenSuperblocks) {
  std::string image = write(rich_tree());
  std::string bytes = testing::read_file(image);
  auto open_bytes = [&](const std::string& b) {
    std::string p = tmp_ / "broken.erofs";
    std::ofstream(p, std::ios::binary | std::ios::trunc) << b;
    return ErofsReader::open(p);
  };
  ASSERT_TRUE(open_bytes(bytes).ok());
  EXPECT_FALSE(open_bytes(bytes.substr(0, 1100)).ok());
  EXPECT_FALSE(open_bytes("").ok());
  std::string bad = bytes;
  bad[1024] ^= 1;  // magic
  EXPECT_FALSE(open_bytes(bad).ok());
  bad = bytes;
  bad[1024 + 12] = 40;  // block size bits
  EXPECT_FALSE(open_bytes(bad).ok());
  bad = bytes;
  bad[1024 + 80] = 0x8;  // extra devices
  EXPECT_EQ(open_bytes(bad).error().code, ENOTSUP);
  bad = bytes;
  bad[1024 + 14] = 0x01;  // root nid 1 is inside the superblock area: not a directory
  bad[1024 + 15] = 0x00;
  EXPECT_FALSE(open_bytes(bad).ok());
  bad = bytes;
  bad[1024 + 40] = static_cast<char>(0xff);  // meta_blkaddr far past the end
  EXPECT_FALSE(open_bytes(bad).ok());
  // The image cut after its metadata: data reads fail, they do not crash.
  auto r = open_bytes(bytes.substr(0, 8192));
  if (r.ok()) {
    std::size_t budget = 100000;
    EXPECT_FALSE(walk(*r, r->root_nid(), 0, budget).ok());
  }
  auto whole = ErofsReader::open(image);
  ASSERT_TRUE(whole.ok());
  EXPECT_FALSE(whole->inode(whole->file_size() / 32 + 1).ok());
  EXPECT_FALSE(whole->inode(~0ull).ok());
}

// Random corruption of metadata bytes: every call returns a value or an
// error; nothing crashes, hangs or allocates without bound (ASan builds).
TEST_F(ImageErofsReader, SurvivesRandomCorruption) {
  std::string image = write(rich_tree());
  std::string bytes = testing::read_file(image);
  std::mt19937 rng(12345);
  std::string p = tmp_ / "fuzzed.erofs";
  int opened = 0;
  for (int round = 0; round < 300; ++round) {
    std::string b = bytes;
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < flips; ++i) {
      // Mostly metadata: the superblock and the first inode blocks.
      std::size_t at = 1024 + rng() % std::min<std::size_t>(b.size() - 1024, 3 * 4096);
      b[at] = static_cast<char>(rng());
    }
    std::ofstream(p, std::ios::binary | std::ios::trunc) << b;
    auto r = ErofsReader::open(p);
    if (!r.ok()) continue;
    ++opened;
    std::size_t budget = 2000;
    (void)walk(*r, r->root_nid(), 0, budget);
    (void)r->lookup_path("/xdir/s1");
  }
  EXPECT_GT(opened, 100);
}

}  // namespace
}  // namespace moat::image
