// Pre-boot patches written into an upper disk with libext2fs, checked by
// e2fsck, by the kernel's own read of the ext4 (a read-only loop mount), and
// by the overlay the guest would see (overlayfs over a lower directory).
// Loop and overlay mounts need root, which these tests run as.
#include "tests/command_run.h"
#include "store/upper_patch.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "store/ext4_image.h"
#include "store/guest_path.h"

namespace moat::store {
namespace {

using Kind = UpperPatch::Kind;

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "moat-patch-XXXXXX").string();
    path_ = ::mkdtemp(templ.data()) ? templ : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};


// Empty when `e2fsck -fn` finds nothing to fix.
std::string fsck(const std::string& image) {
  auto [rc, out] = test_commands::shell_output("e2fsck -fn " + image);
  return rc == 0 ? "" : "e2fsck exit " + std::to_string(rc) + ":\n" + out;
}

class Mount {
 public:
  Mount(const std::string& what, const std::string& dir, const std::string& args) : dir_(dir) {
    std::filesystem::create_directories(dir);
    auto [rc, out] = test_commands::shell_output("mount " + args + " " + what + " " + dir);
    ok_ = rc == 0;
    error_ = out;
  }
  ~Mount() {
    if (ok_ && test_commands::shell_output("umount " + dir_).first != 0) test_commands::shell_output("umount -l " + dir_);
  }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

 private:
  std::string dir_, error_;
  bool ok_ = false;
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct stat lstat_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) st.st_mode = 0;
  return st;
}

std::string xattr_of(const std::string& path, const std::string& name) {
  char buf[256];
  ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof(buf));
  return n < 0 ? "<none>" : std::string(buf, static_cast<std::size_t>(n));
}

std::string sha256_of(const std::string& path) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  unsigned char md[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  char two[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(two, sizeof(two), "%02x", md[i]);
    hex += two;
  }
  return hex;
}

void set_mtime(const std::string& path, std::int64_t sec, long nsec = 0) {
  struct timespec times[2] = {{sec, nsec}, {sec, nsec}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

UpperPatch patch(Kind kind, const std::string& text) {
  auto p = parse_root_patch(kind, text);
  EXPECT_TRUE(p.ok()) << text << ": " << p.error().message;
  return p.ok() ? *p : UpperPatch{};
}

// ---------------------------------------------------------------- parsing

TEST(StoreUpperPatchParse, SplitsAndCleansEachForm) {
  auto c = patch(Kind::kCopy, "./some:dir/f.txt:/opt//app/./x/../conf");
  EXPECT_EQ(c.host_path, "./some:dir/f.txt");
  EXPECT_EQ(c.guest_path, "/opt/app/conf");
  auto into = patch(Kind::kCopy, "f:/opt/");
  EXPECT_EQ(into.guest_path, "/opt/");
  EXPECT_EQ(patch(Kind::kCopy, "dir:/").guest_path, "/");
  auto w = patch(Kind::kWrite, "/etc/app.conf=a=b\nc");
  EXPECT_EQ(w.guest_path, "/etc/app.conf");
  EXPECT_EQ(w.text, "a=b\nc");
  EXPECT_EQ(patch(Kind::kWrite, "/empty=").text, "");
  EXPECT_EQ(patch(Kind::kMkdir, "/a/b/").guest_path, "/a/b/");
  EXPECT_EQ(patch(Kind::kRemove, "/etc/../var/x").guest_path, "/var/x");
  EXPECT_EQ(patch(Kind::kMkdir, "/" + std::string(255, 'n')).guest_path, "/" + std::string(255, 'n'));
  EXPECT_FALSE(c.mode || c.uid || c.gid);
}

TEST(StoreUpperPatchParse, RejectsBadSpecs) {
  auto expect_error = [](Kind kind, const std::string& text, int code, const std::string& part) {
    auto p = parse_root_patch(kind, text);
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_EQ(p.error().code, code) << text;
    EXPECT_NE(p.error().message.find(part), std::string::npos) << p.error().message;
  };
  expect_error(Kind::kMkdir, "etc/x", EINVAL, "not absolute");
  expect_error(Kind::kMkdir, "", EINVAL, "not absolute");
  expect_error(Kind::kRemove, "/../etc/passwd", EPERM, "escapes the root");
  expect_error(Kind::kWrite, "/a/../../b=x", EPERM, "escapes the root");
  expect_error(Kind::kCopy, "file", EINVAL, "HOST:GUEST");
  expect_error(Kind::kCopy, "file:relative", EINVAL, "HOST:GUEST");
  expect_error(Kind::kCopy, ":/x", EINVAL, "HOST:GUEST");
  expect_error(Kind::kCopy, "f:/../x", EPERM, "escapes");
  expect_error(Kind::kWrite, "/etc/motd", EINVAL, "GUEST=TEXT");
  expect_error(Kind::kWrite, "rel=x", EINVAL, "not absolute");
  expect_error(Kind::kWrite, "/=x", EINVAL, "root directory");
  expect_error(Kind::kWrite, "/dir/=x", EISDIR, "names a directory");
  expect_error(Kind::kRemove, "/", EINVAL, "root directory");
  expect_error(Kind::kMkdir, "/a/..", EINVAL, "root directory");
  expect_error(Kind::kMkdir, "/" + std::string(256, 'n'), ENAMETOOLONG, "255");
  expect_error(Kind::kMkdir, "/" + std::string(5000, 'n'), ENAMETOOLONG, "4096");
  expect_error(Kind::kWrite, "/big=" + std::string(kMaxPatchText + 1, 'x'), E2BIG, "1 MiB");
  expect_error(Kind::kMkdir, std::string("/a\0b", 4), EINVAL, "NUL");
}

TEST(StoreUpperPatchParse, ChownChmodAndDefaults) {
  auto both = parse_patch_owner("1000:1001");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(*both->uid, 1000u);
  EXPECT_EQ(*both->gid, 1001u);
  auto one = parse_patch_owner("42");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one->uid, 42u);
  EXPECT_EQ(*one->gid, 42u);
  EXPECT_EQ(*parse_patch_owner("4294967294:0")->uid, 4294967294u);
  for (const char* bad : {"", ":", "root", "1000:", ":5", "-1", "+1", "4294967295", "99999999999", "1:2:3", "1 "}) {
    auto r = parse_patch_owner(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, EINVAL);
    }
  }
  EXPECT_EQ(*parse_patch_mode("644"), 0644u);
  EXPECT_EQ(*parse_patch_mode("0755"), 0755u);
  EXPECT_EQ(*parse_patch_mode("4755"), 04755u);
  EXPECT_EQ(*parse_patch_mode("0"), 0u);
  for (const char* bad : {"", "8", "10000", "0o755", "u+x", "-755", "0000755"}) {
    EXPECT_FALSE(parse_patch_mode(bad).ok()) << bad;
  }

  std::vector<UpperPatch> ps{patch(Kind::kWrite, "/a=x"), patch(Kind::kMkdir, "/b")};
  ps[1].mode = 0700;
  ps[1].uid = 5;
  PatchDefaults d;
  d.mode = 0640;
  d.uid = 7;
  d.gid = 8;
  apply_patch_defaults(ps, d);
  EXPECT_EQ(*ps[0].mode, 0640u);
  EXPECT_EQ(*ps[0].uid, 7u);
  EXPECT_EQ(*ps[0].gid, 8u);
  EXPECT_EQ(*ps[1].mode, 0700u);  // per-patch values win
  EXPECT_EQ(*ps[1].uid, 5u);
  EXPECT_EQ(*ps[1].gid, 8u);
}

// ------------------------------------------------------- the lower lookup

TEST(StoreUpperPatchLower, DirectoryLookupNeverFollowsSymlinks) {
  TempDir tmp;
  std::string root = tmp / "root";
  std::filesystem::create_directories(root + "/etc");
  write_file(root + "/etc/passwd", "x");
  ASSERT_EQ(::chown((root + "/etc/passwd").c_str(), 12, 34), 0);
  ASSERT_EQ(::chmod((root + "/etc/passwd").c_str(), 0640), 0);
  set_mtime(root + "/etc/passwd", 1234567890);
  ASSERT_EQ(::symlink("/", (root + "/escape").c_str()), 0);
  ASSERT_EQ(::symlink("etc", (root + "/etc-link").c_str()), 0);
  auto lookup = lower_lookup_from_directory(root);
  ASSERT_TRUE(lookup.ok()) << lookup.error().message;

  auto f = (*lookup)("/etc/passwd");
  ASSERT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ((*f)->mode, static_cast<std::uint32_t>(S_IFREG | 0640));
  EXPECT_EQ((*f)->uid, 12u);
  EXPECT_EQ((*f)->gid, 34u);
  EXPECT_EQ((*f)->mtime, 1234567890);
  auto r = (*lookup)("/");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_TRUE(S_ISDIR((*r)->mode));
  auto link = (*lookup)("/escape");
  ASSERT_TRUE(link.ok() && link->has_value());
  EXPECT_TRUE(S_ISLNK((*link)->mode));
  // Through a symlink (inside or out of the root) there is nothing.
  for (const char* p : {"/escape/etc", "/escape/tmp", "/etc-link/passwd", "/etc/passwd/x", "/missing", "/missing/x"}) {
    auto e = (*lookup)(p);
    ASSERT_TRUE(e.ok()) << p << ": " << e.error().message;
    EXPECT_FALSE(e->has_value()) << p;
  }
  EXPECT_FALSE(lower_lookup_from_directory(tmp / "nope").ok());
}

// ------------------------------------------------------ applying patches

class StoreUpperPatch : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "these tests mount loop devices and overlays";
    upper_ = tmp_ / "upper.ext4";
    auto st = make_upper_disk(upper_, 512, tmp_ / "cache");
    ASSERT_TRUE(st.ok()) << st.error().message;
    make_lower();
    auto lookup = lower_lookup_from_directory(lower_);
    ASSERT_TRUE(lookup.ok()) << lookup.error().message;
    lookup_ = *lookup;
  }

  // A small image root with the attributes parents must copy.
  void make_lower() {
    lower_ = tmp_ / "lower";
    for (const char* d : {"etc", "tmp", "var/lib/app", "usr/bin", "data/keep", "opt"}) {
      std::filesystem::create_directories(lower_ + "/" + d);
    }
    write_file(lower_ + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    write_file(lower_ + "/etc/old.conf", "old\n");
    write_file(lower_ + "/data/keep/a", "a");
    write_file(lower_ + "/data/keep/b", "b");
    write_file(lower_ + "/file-in-lower", "lower file\n");
    ASSERT_EQ(::symlink("usr/bin", (lower_ + "/bin").c_str()), 0);
    ASSERT_EQ(::chmod((lower_ + "/tmp").c_str(), 01777), 0);
    ASSERT_EQ(::chmod((lower_ + "/var/lib").c_str(), 0750), 0);
    ASSERT_EQ(::chown((lower_ + "/var/lib").c_str(), 100, 200), 0);
    set_mtime(lower_ + "/var/lib", 1300000000);
    set_mtime(lower_ + "/tmp", 1400000000);
    set_mtime(lower_ + "/etc", 1500000000);
    set_mtime(lower_ + "/data", 1510000000);
  }

  Status apply(const std::vector<UpperPatch>& patches) { return apply_upper_patches(upper_, patches, lookup_); }

  void expect_ok(const std::vector<UpperPatch>& patches) {
    auto st = apply(patches);
    ASSERT_TRUE(st.ok()) << st.error().message;
    EXPECT_EQ(fsck(upper_), "");
  }

  // The ext4 mounted read-only; paths below are inside the disk ("upper/etc").
  std::unique_ptr<Mount> mount_disk() {
    auto m = std::make_unique<Mount>(upper_, tmp_ / "disk", "-o loop,ro");
    EXPECT_TRUE(m->ok()) << m->error();
    return m;
  }
  std::string disk(const std::string& p) const { return tmp_ / ("disk/" + p); }

  TempDir tmp_;
  std::string upper_, lower_;
  LowerLookup lookup_;
};

TEST_F(StoreUpperPatch, WriteAndMkdirDefaultsAndParentsCopyTheLower) {
  expect_ok({patch(Kind::kWrite, "/etc/motd=hello\n"), patch(Kind::kMkdir, "/tmp/a/b"),
             patch(Kind::kWrite, "/var/lib/app/state=s"), patch(Kind::kWrite, "/new/deep/file=")});
  auto m = mount_disk();
  ASSERT_TRUE(m->ok());
  auto motd = lstat_of(disk("upper/etc/motd"));
  EXPECT_EQ(motd.st_mode, static_cast<mode_t>(S_IFREG | 0644));
  EXPECT_EQ(motd.st_uid, 0u);
  EXPECT_EQ(motd.st_gid, 0u);
  EXPECT_EQ(read_file(disk("upper/etc/motd")), "hello\n");
  // Parents that exist in the lower copy its mode, owner and mtime.
  auto etc = lstat_of(disk("upper/etc"));
  EXPECT_EQ(etc.st_mode, static_cast<mode_t>(S_IFDIR | 0755));
  EXPECT_EQ(etc.st_mtim.tv_sec, 1500000000);
  auto tmp = lstat_of(disk("upper/tmp"));
  EXPECT_EQ(tmp.st_mode, static_cast<mode_t>(S_IFDIR | 01777));
  EXPECT_EQ(tmp.st_mtim.tv_sec, 1400000000);
  auto lib = lstat_of(disk("upper/var/lib"));
  EXPECT_EQ(lib.st_mode, static_cast<mode_t>(S_IFDIR | 0750));
  EXPECT_EQ(lib.st_uid, 100u);
  EXPECT_EQ(lib.st_gid, 200u);
  EXPECT_EQ(lib.st_mtim.tv_sec, 1300000000);
  for (const char* d : {"upper/tmp/a", "upper/tmp/a/b", "upper/new", "upper/new/deep"}) {
    auto st = lstat_of(disk(d));
    EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFDIR | 0755)) << d;
    EXPECT_EQ(st.st_uid, 0u) << d;
    EXPECT_EQ(xattr_of(disk(d), "trusted.overlay.opaque"), "<none>") << d;
  }
  EXPECT_EQ(lstat_of(disk("upper/new/deep/file")).st_size, 0);
  // Only what the patches touched is in the upper.
  EXPECT_EQ(lstat_of(disk("upper/etc/passwd")).st_mode, 0u);
  EXPECT_EQ(lstat_of(disk("upper/usr")).st_mode, 0u);
}

TEST_F(StoreUpperPatch, OwnerAndModeOptions) {
  std::vector<UpperPatch> ps{patch(Kind::kWrite, "/home/u/.profile=x"), patch(Kind::kMkdir, "/home/u/bin"),
                             patch(Kind::kMkdir, "/etc")};
  PatchDefaults d;
  d.uid = 1000;
  d.gid = 70000;  // above 16 bits: the high half lives elsewhere in the inode
  apply_patch_defaults(ps, d);
  ps[0].mode = 0600;
  ps[1].mode = 02750;
  expect_ok(ps);
  auto m = mount_disk();
  ASSERT_TRUE(m->ok());
  auto profile = lstat_of(disk("upper/home/u/.profile"));
  EXPECT_EQ(profile.st_mode, static_cast<mode_t>(S_IFREG | 0600));
  EXPECT_EQ(profile.st_uid, 1000u);
  EXPECT_EQ(profile.st_gid, 70000u);
  auto bin = lstat_of(disk("upper/home/u/bin"));
  EXPECT_EQ(bin.st_mode, static_cast<mode_t>(S_IFDIR | 02750));
  EXPECT_EQ(bin.st_uid, 1000u);
  // Implicit parents stay root's.
  EXPECT_EQ(lstat_of(disk("upper/home")).st_uid, 0u);
  EXPECT_EQ(lstat_of(disk("upper/home/u")).st_uid, 0u);
  // --mkdir of an existing lower directory with --chown: the lower mode and
  // mtime stay, the owner changes.
  auto etc = lstat_of(disk("upper/etc"));
  EXPECT_EQ(etc.st_mode, static_cast<mode_t>(S_IFDIR | 0755));
  EXPECT_EQ(etc.st_uid, 1000u);
  EXPECT_EQ(etc.st_gid, 70000u);
  EXPECT_EQ(etc.st_mtim.tv_sec, 1500000000);
}

TEST_F(StoreUpperPatch, RemoveWritesWhiteoutsOrUndoesEarlierPatches) {
  expect_ok({patch(Kind::kRemove, "/etc/old.conf"), patch(Kind::kRemove, "/data/keep"),
             patch(Kind::kWrite, "/etc/mine=1"), patch(Kind::kMkdir, "/scratch/x/y"), patch(Kind::kRemove, "/etc/mine"),
             patch(Kind::kRemove, "/scratch"), patch(Kind::kWrite, "/file-in-lower=replaced"),
             patch(Kind::kRemove, "/file-in-lower")});
  auto m = mount_disk();
  ASSERT_TRUE(m->ok());
  for (const char* w : {"upper/etc/old.conf", "upper/data/keep", "upper/file-in-lower"}) {
    auto st = lstat_of(disk(w));
    EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFCHR)) << w;  // mode 0
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << w;
    EXPECT_EQ(st.st_uid, 0u) << w;
  }
  EXPECT_EQ(lstat_of(disk("upper/etc/mine")).st_mode, 0u);
  EXPECT_EQ(lstat_of(disk("upper/scratch")).st_mode, 0u);
  EXPECT_EQ(lstat_of(disk("upper/data")).st_mtim.tv_sec, 1510000000);
}

TEST_F(StoreUpperPatch, RemoveOfAMissingPathNamesIt) {
  for (const char* p : {"/etc/nothing", "/nowhere/deep", "/etc/passwd/child", "/bin/sh"}) {
    auto st = apply({patch(Kind::kRemove, p)});
    ASSERT_FALSE(st.ok()) << p;
    EXPECT_NE(st.error().message.find(std::string("--delete ") + p), std::string::npos) << st.error().message;
    EXPECT_NE(st.error().code, 0) << p;
  }
  auto twice = apply({patch(Kind::kRemove, "/etc/old.conf"), patch(Kind::kRemove, "/etc/old.conf")});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, ENOENT);
  EXPECT_NE(twice.error().message.find("/etc/old.conf: no such file"), std::string::npos) << twice.error().message;
  EXPECT_EQ(fsck(upper_), "");
}

TEST_F(StoreUpperPatch, OpaqueDirectoriesWhereTheyHideTheLower) {
  expect_ok({patch(Kind::kMkdir, "/file-in-lower"),            // dir over a lower file
             patch(Kind::kRemove, "/data/keep"), patch(Kind::kWrite, "/data/keep/new=n"),  // recreated dir
             patch(Kind::kMkdir, "/opt")});                     // existing lower dir: merged
  auto m = mount_disk();
  ASSERT_TRUE(m->ok());
  EXPECT_EQ(lstat_of(disk("upper/file-in-lower")).st_mode, static_cast<mode_t>(S_IFDIR | 0755));
  EXPECT_EQ(xattr_of(disk("upper/file-in-lower"), "trusted.overlay.opaque"), "y");
  EXPECT_EQ(xattr_of(disk("upper/data/keep"), "trusted.overlay.opaque"), "y");
  EXPECT_EQ(read_file(disk("upper/data/keep/new")), "n");
  EXPECT_EQ(xattr_of(disk("upper/opt"), "trusted.overlay.opaque"), "<none>");
  EXPECT_EQ(xattr_of(disk("upper/data"), "trusted.overlay.opaque"), "<none>");
}

TEST_F(StoreUpperPatch, DirectoriesAreNotMadeThroughSymlinksOrFiles) {
  auto through_link = apply({patch(Kind::kWrite, "/bin/tool=x")});
  ASSERT_FALSE(through_link.ok());
  EXPECT_EQ(through_link.error().code, ENOTDIR);
  EXPECT_NE(through_link.error().message.find("/bin is a symbolic link"), std::string::npos);
  auto below_file = apply({patch(Kind::kWrite, "/etc/passwd/x=y")});
  ASSERT_FALSE(below_file.ok());
  EXPECT_EQ(below_file.error().code, ENOTDIR);
  auto below_patch = apply({patch(Kind::kWrite, "/f=1"), patch(Kind::kMkdir, "/f/sub")});
  ASSERT_FALSE(below_patch.ok());
  EXPECT_EQ(below_patch.error().code, ENOTDIR);
  EXPECT_EQ(fsck(upper_), "");
}

TEST_F(StoreUpperPatch, LaterPatchesReplaceEarlierOnesInOrder) {
  expect_ok({patch(Kind::kWrite, "/a=first"), patch(Kind::kWrite, "/a=second"), patch(Kind::kMkdir, "/d/e/f"),
             patch(Kind::kWrite, "/d/e/f/g=x"), patch(Kind::kWrite, "/d=now a file"), patch(Kind::kMkdir, "/a")});
  auto m = mount_disk();
  ASSERT_TRUE(m->ok());
  EXPECT_TRUE(S_ISDIR(lstat_of(disk("upper/a")).st_mode));
  EXPECT_EQ(read_file(disk("upper/d")), "now a file");
}

TEST_F(StoreUpperPatch, CopiesTreesKeepingModesTimesAndSymlinks) {
  std::string src = tmp_ / "src";
  std::filesystem::create_directories(src + "/sub/deeper");
  write_file(src + "/run.sh", "#!/bin/sh\necho hi\n");
  ASSERT_EQ(::chmod((src + "/run.sh").c_str(), 04755), 0);
  write_file(src + "/secret", "s");
  ASSERT_EQ(::chmod((src + "/secret").c_str(), 0600), 0);
  ASSERT_EQ(::chown((src + "/secret").c_str(), 1234, 5678), 0);
  write_file(src + "/sub/deeper/empty", "");
  ASSERT_EQ(::symlink("/etc/shadow", (src + "/abs-link").c_str()), 0);
  ASSERT_EQ(::symlink("../../outside", (src + "/sub/rel-link").c_str()), 0);
  std::string long_target(300, 't');  // a slow symlink (target in a block)
  ASSERT_EQ(::symlink(long_target.c_str(), (src + "/long-link").c_str()), 0);
  ASSERT_EQ(::chmod((src + "/sub").c_str(), 0710), 0);
  set_mtime(src + "/secret", 1600000000, 123456789);
  set_mtime(src + "/abs-link", 1600000001);
  set_mtime(src + "/sub", 1600000002);
  // The top-level source may be a symlink; it is followed.
  ASSERT_EQ(::symlink(src.c_str(), (tmp_ / "src-link").c_str()), 0);
  write_file(tmp_ / "single", "one file");
  ASSERT_EQ(::chmod((tmp_ / "single").c_str(), 0640), 0);

  expect_ok({patch(Kind::kCopy, tmp_ / "src-link" + ":/opt/app"), patch(Kind::kCopy, tmp_ / "single" + ":/srv/"),
             patch(Kind::kCopy, tmp_ / "single" + ":/srv/renamed")});
  auto m = mount_disk();
  ASSERT_TRUE(m->ok());
  auto run_sh = lstat_of(disk("upper/opt/app/run.sh"));
  EXPECT_EQ(run_sh.st_mode, static_cast<mode_t>(S_IFREG | 04755));
  EXPECT_EQ(read_file(disk("upper/opt/app/run.sh")), "#!/bin/sh\necho hi\n");
  auto secret = lstat_of(disk("upper/opt/app/secret"));
  EXPECT_EQ(secret.st_mode, static_cast<mode_t>(S_IFREG | 0600));
  EXPECT_EQ(secret.st_uid, 0u);  // host owners are not carried over
  EXPECT_EQ(secret.st_gid, 0u);
  EXPECT_EQ(secret.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(secret.st_mtim.tv_nsec, 123456789);
  auto sub = lstat_of(disk("upper/opt/app/sub"));
  EXPECT_EQ(sub.st_mode, static_cast<mode_t>(S_IFDIR | 0710));
  EXPECT_EQ(sub.st_mtim.tv_sec, 1600000002);
  EXPECT_EQ(lstat_of(disk("upper/opt/app/sub/deeper/empty")).st_size, 0);
  auto abs_link = lstat_of(disk("upper/opt/app/abs-link"));
  EXPECT_TRUE(S_ISLNK(abs_link.st_mode));
  EXPECT_EQ(abs_link.st_mtim.tv_sec, 1600000001);
  EXPECT_EQ(std::filesystem::read_symlink(disk("upper/opt/app/abs-link")).string(), "/etc/shadow");
  EXPECT_EQ(std::filesystem::read_symlink(disk("upper/opt/app/sub/rel-link")).string(), "../../outside");
  EXPECT_EQ(std::filesystem::read_symlink(disk("upper/opt/app/long-link")).string(), long_target);
  // The target directory exists in the lower: merged, keeping its attributes.
  EXPECT_EQ(xattr_of(disk("upper/opt"), "trusted.overlay.opaque"), "<none>");
  auto single = lstat_of(disk("upper/srv/single"));
  EXPECT_EQ(single.st_mode, static_cast<mode_t>(S_IFREG | 0640));
  EXPECT_EQ(read_file(disk("upper/srv/single")), "one file");
  EXPECT_EQ(read_file(disk("upper/srv/renamed")), "one file");
}

TEST_F(StoreUpperPatch, CopyIntoAnExistingDirectoryMergesAndChmodAppliesToTheTree) {
  std::string src = tmp_ / "etc-src";
  std::filesystem::create_directories(src + "/conf.d");
  write_file(src + "/hosts", "127.0.0.1 localhost\n");
  write_file(src + "/conf.d/a.conf", "a");
  ASSERT_EQ(::chmod(src.c_str(), 0700), 0);
  std::vector<UpperPatch> ps{patch(Kind::kCopy, src + ":/etc"), patch(Kind::kCopy, src + ":/fresh")};
  ps[1].mode = 0640;
  ps[1].uid = 33;
  ps[1].gid = 33;
  expect_ok(ps);
  auto m = mount_disk();
  ASSERT_TRUE(m->ok());
  // /etc keeps the lower's 0755 and mtime, not the host directory's 0700.
  auto etc = lstat_of(disk("upper/etc"));
  EXPECT_EQ(etc.st_mode, static_cast<mode_t>(S_IFDIR | 0755));
  EXPECT_EQ(etc.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(read_file(disk("upper/etc/hosts")), "127.0.0.1 localhost\n");
  EXPECT_EQ(lstat_of(disk("upper/etc/passwd")).st_mode, 0u);  // untouched lower file stays in the lower
  // A fresh target gets the mode: files exactly, directories with x for each r.
  EXPECT_EQ(lstat_of(disk("upper/fresh")).st_mode, static_cast<mode_t>(S_IFDIR | 0750));
  EXPECT_EQ(lstat_of(disk("upper/fresh/conf.d")).st_mode, static_cast<mode_t>(S_IFDIR | 0750));
  auto hosts = lstat_of(disk("upper/fresh/hosts"));
  EXPECT_EQ(hosts.st_mode, static_cast<mode_t>(S_IFREG | 0640));
  EXPECT_EQ(hosts.st_uid, 33u);
  EXPECT_EQ(lstat_of(disk("upper/fresh/conf.d/a.conf")).st_gid, 33u);
}

TEST_F(StoreUpperPatch, CopyErrorsNameTheHostPath) {
  std::string missing = tmp_ / "missing-file";
  auto st = apply({patch(Kind::kCopy, missing + ":/x")});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ENOENT);
  EXPECT_NE(st.error().message.find(missing), std::string::npos) << st.error().message;

  std::string fifo = tmp_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  st = apply({patch(Kind::kCopy, fifo + ":/x")});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("special file"), std::string::npos) << st.error().message;
  st = apply({patch(Kind::kCopy, "/dev/null:/x")});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("special file"), std::string::npos) << st.error().message;

  // A special file inside a tree stops the copy; the disk stays consistent.
  std::string tree = tmp_ / "tree";
  std::filesystem::create_directories(tree);
  write_file(tree + "/a-first", "1");
  ASSERT_EQ(::mkfifo((tree + "/b-fifo").c_str(), 0644), 0);
  st = apply({patch(Kind::kCopy, tree + ":/t")});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find(tree + "/b-fifo is a special file"), std::string::npos) << st.error().message;
  EXPECT_EQ(fsck(upper_), "");

  st = apply_upper_patches(tmp_ / "no-such.ext4", {patch(Kind::kMkdir, "/x")}, lookup_);
  EXPECT_FALSE(st.ok());
}

TEST_F(StoreUpperPatch, OddNamesAreWrittenByteExact) {
  const std::vector<std::string> names = {"with space",  "quote\"s and 'single'", "new\nline", "tab\tand\\back",
                                          "ünïcødé-名前", std::string(255, 'L'),  "-dash", "semi;colon $HOME"};
  std::string src = tmp_ / "odd";
  std::filesystem::create_directories(src);
  std::vector<UpperPatch> ps;
  for (const auto& n : names) {
    write_file(src + "/" + n, "content of " + n);
    ps.push_back(patch(Kind::kWrite, "/w/" + n + "=" + n));
    ps.push_back(patch(Kind::kMkdir, "/m/" + n));
  }
  ps.push_back(patch(Kind::kCopy, src + ":/c"));
  expect_ok(ps);
  auto m = mount_disk();
  ASSERT_TRUE(m->ok());
  for (const auto& n : names) {
    EXPECT_EQ(read_file(disk("upper/w/" + n)), n) << n;
    EXPECT_TRUE(S_ISDIR(lstat_of(disk("upper/m/" + n)).st_mode)) << n;
    EXPECT_EQ(read_file(disk("upper/c/" + n)), "content of " + n) << n;
  }
  std::size_t count = 0;
  for (const auto& e : std::filesystem::directory_iterator(disk("upper/c"))) {
    ++count;
    EXPECT_NE(std::find(names.begin(), names.end(), e.path().filename().string()), names.end());
  }
  EXPECT_EQ(count, names.size());
}

TEST_F(StoreUpperPatch, ManyEntriesGrowDirectories) {
  std::string src = tmp_ / "many";
  std::filesystem::create_directories(src);
  for (int i = 0; i < 3000; ++i) write_file(src + "/file-with-a-longish-name-" + std::to_string(i), std::to_string(i));
  auto t0 = std::chrono::steady_clock::now();
  expect_ok({patch(Kind::kCopy, src + ":/many"), patch(Kind::kRemove, "/many/file-with-a-longish-name-7")});
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ info ] 3000 files copied into one directory in %lld ms (e2fsck included)\n", static_cast<long long>(ms));
  auto m = mount_disk();
  ASSERT_TRUE(m->ok());
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(disk("upper/many"))) ++count;
  EXPECT_EQ(count, 2999u);
  EXPECT_EQ(read_file(disk("upper/many/file-with-a-longish-name-2999")), "2999");
}

TEST_F(StoreUpperPatch, LargeFilesAreByteExactAndSparseStaysSparse) {
  std::string big = tmp_ / "big.bin";
  {
    std::ofstream out(big, std::ios::binary);
    std::mt19937_64 rng(42);
    std::vector<std::uint64_t> buf(1 << 17);  // 1 MiB
    for (int mib = 0; mib < 100; ++mib) {
      for (auto& w : buf) w = rng();
      out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size() * 8));
    }
  }
  // 64 MiB with 8 KiB of data in the middle and a zero-filled (not sparse) MiB.
  std::string sparse = tmp_ / "sparse.img";
  {
    int fd = ::open(sparse.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    std::string data(8192, 'D');
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 32 << 20), 8192);
    std::string zeros(1 << 20, '\0');
    ASSERT_EQ(::pwrite(fd, zeros.data(), zeros.size(), 40 << 20), 1 << 20);
    ASSERT_EQ(::ftruncate(fd, 64 << 20), 0);
    ::close(fd);
  }
  auto t0 = std::chrono::steady_clock::now();
  expect_ok({patch(Kind::kCopy, big + ":/data/big.bin"), patch(Kind::kCopy, sparse + ":/data/sparse.img")});
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ info ] 100 MiB + 64 MiB sparse copied into the upper in %lld ms\n", static_cast<long long>(ms));
  auto m = mount_disk();
  ASSERT_TRUE(m->ok());
  EXPECT_EQ(lstat_of(disk("upper/data/big.bin")).st_size, 100 << 20);
  EXPECT_EQ(sha256_of(disk("upper/data/big.bin")), sha256_of(big));
  auto s = lstat_of(disk("upper/data/sparse.img"));
  EXPECT_EQ(s.st_size, 64 << 20);
  EXPECT_EQ(sha256_of(disk("upper/data/sparse.img")), sha256_of(sparse));
  std::printf("[ info ] the 64 MiB sparse file takes %lld KiB in the upper\n", static_cast<long long>(s.st_blocks / 2));
  EXPECT_LE(s.st_blocks * 512, 64 * 1024) << "holes and zero blocks were written out";
}

TEST_F(StoreUpperPatch, RefusesADiskWithoutAnUpperDirectory) {
  std::string plain = tmp_ / "plain.ext4";
  ASSERT_EQ(test_commands::shell_output("truncate -s 64M " + plain + " && mkfs.ext4 -q -F " + plain).first, 0);
  auto st = apply_upper_patches(plain, {patch(Kind::kMkdir, "/x")}, lookup_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("not a moat upper disk"), std::string::npos) << st.error().message;
}

TEST_F(StoreUpperPatch, AFullDiskFailsWithEnospcAndStaysConsistent) {
  std::string small = tmp_ / "small.ext4";
  ASSERT_TRUE(make_upper_disk(small, 16, tmp_ / "cache").ok());
  std::string big = tmp_ / "32m.bin";
  {
    std::ofstream out(big, std::ios::binary);
    std::mt19937_64 rng(7);
    std::vector<std::uint64_t> buf(1 << 17);
    for (int mib = 0; mib < 32; ++mib) {
      for (auto& w : buf) w = rng();
      out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size() * 8));
    }
  }
  auto st = apply_upper_patches(small, {patch(Kind::kCopy, big + ":/big")}, lookup_);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ENOSPC) << st.error().message;
  EXPECT_NE(st.error().message.find("--copy " + big + ":/big"), std::string::npos) << st.error().message;
  EXPECT_EQ(fsck(small), "");
}

TEST_F(StoreUpperPatch, RefusesADiskWhoseJournalNeedsRecovery) {
  ASSERT_EQ(test_commands::shell_output("debugfs -w -R 'feature needs_recovery' " + upper_).first, 0);
  auto st = apply({patch(Kind::kMkdir, "/x")});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, EBUSY);
  EXPECT_NE(st.error().message.find("journal needs recovery"), std::string::npos) << st.error().message;
}

// What the guest sees: the patched upper over the lower, as overlayfs
// mounts them (the same options as the agent's).
TEST_F(StoreUpperPatch, OverlayShowsThePatchedView) {
  std::string src = tmp_ / "app";
  std::filesystem::create_directories(src + "/lib");
  write_file(src + "/lib/x.py", "print(1)\n");
  ASSERT_EQ(::symlink("lib/x.py", (src + "/main.py").c_str()), 0);
  std::vector<UpperPatch> ps{
      patch(Kind::kRemove, "/etc/old.conf"),  patch(Kind::kWrite, "/etc/motd=hi"),
      patch(Kind::kMkdir, "/tmp/cache"),      patch(Kind::kCopy, src + ":/opt/app"),
      patch(Kind::kRemove, "/data/keep"),     patch(Kind::kWrite, "/data/keep/only=1"),
      patch(Kind::kMkdir, "/file-in-lower"),  patch(Kind::kWrite, "/var/lib/app/db=x"),
  };
  expect_ok(ps);
  {
    Mount disk(upper_, tmp_ / "rw", "-o loop");
    ASSERT_TRUE(disk.ok()) << disk.error();
    std::string opts = "lowerdir=" + lower_ + ",upperdir=" + tmp_ / "rw/upper" + ",workdir=" + tmp_ / "rw/work" +
                       ",index=off,xino=off,redirect_dir=on,metacopy=off";
    Mount merged("overlay", tmp_ / "merged", "-t overlay -o " + opts);
    ASSERT_TRUE(merged.ok()) << merged.error();
    auto at = [&](const std::string& p) { return tmp_ / ("merged" + p); };
    struct stat gone {};
    EXPECT_EQ(::lstat(at("/etc/old.conf").c_str(), &gone), -1);  // hidden by the whiteout
    EXPECT_EQ(errno, ENOENT);
    EXPECT_EQ(read_file(at("/etc/passwd")), "root:x:0:0:root:/root:/bin/sh\n");
    EXPECT_EQ(read_file(at("/etc/motd")), "hi");
    EXPECT_EQ(lstat_of(at("/etc")).st_mtim.tv_sec, 1500000000);
    EXPECT_EQ(lstat_of(at("/tmp")).st_mode, static_cast<mode_t>(S_IFDIR | 01777));
    EXPECT_TRUE(S_ISDIR(lstat_of(at("/tmp/cache")).st_mode));
    EXPECT_EQ(read_file(at("/opt/app/main.py")), "print(1)\n");
    EXPECT_TRUE(S_ISLNK(lstat_of(at("/opt/app/main.py")).st_mode));
    std::vector<std::string> keep;
    for (const auto& e : std::filesystem::directory_iterator(at("/data/keep"))) keep.push_back(e.path().filename());
    EXPECT_EQ(keep, std::vector<std::string>{"only"});  // the lower's a and b stay hidden
    EXPECT_TRUE(S_ISDIR(lstat_of(at("/file-in-lower")).st_mode));
    EXPECT_TRUE(std::filesystem::is_empty(at("/file-in-lower")));
    auto lib = lstat_of(at("/var/lib"));
    EXPECT_EQ(lib.st_mode, static_cast<mode_t>(S_IFDIR | 0750));
    EXPECT_EQ(lib.st_uid, 100u);
    EXPECT_EQ(read_file(at("/var/lib/app/db")), "x");
    // The guest can go on writing where patches wrote.
    write_file(at("/tmp/cache/new"), "guest");
    EXPECT_EQ(read_file(at("/tmp/cache/new")), "guest");
  }
  EXPECT_EQ(fsck(upper_), "");
}

}  // namespace
}  // namespace moat::store
