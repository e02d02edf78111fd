// The root reader's view of a sandbox's root, on disks made here as the
// guest's overlayfs would leave them: an EROFS lower (moat's own writer) and
// an ext4 upper (mkfs.ext4 -d) holding a changed file, a new one, an opaque
// directory, a whiteout, a directory renamed with a redirect, a directory
// turned into a file and a metadata-only copy-up. The diff is checked line
// by line, and hostile marks (a redirect out of the lower) are refused.
// Root is needed for the whiteout device and trusted.* attributes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "tests/command_run.h"
#include "../image/erofs_check.h"
#include "image/erofs/erofs_reader.h"
#include "image/store/directory_image.h"
#include "root_view/ext4_tree_reader.h"
#include "root_view/overlay_view.h"
#include "root_view/root_diff.h"

namespace moat::root_view {
namespace {

using image::testing::TempDir;

constexpr std::int64_t kLowerTime = 1600000000;


void write(const std::string& path, const std::string& text, std::int64_t mtime = kLowerTime) {
  std::ofstream(path) << text;
  struct timespec t[2] = {{mtime, 0}, {mtime, 0}};
  ::utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW);
}

void make_dir(const std::string& path, mode_t mode = 0755) {
  ASSERT_EQ(::mkdir(path.c_str(), mode), 0) << path;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

void set_time(const std::string& path, std::int64_t mtime = kLowerTime) {
  struct timespec t[2] = {{mtime, 0}, {mtime, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW), 0) << path;
}

void whiteout(const std::string& path) { ASSERT_EQ(::mknod(path.c_str(), S_IFCHR | 0000, makedev(0, 0)), 0) << path; }

void mark(const std::string& path, const char* name, const std::string& value) {
  ASSERT_EQ(::lsetxattr(path.c_str(), name, value.data(), value.size(), 0), 0) << path << " " << name;
}

// The lower: the image as it was.
void make_lower(const std::string& l) {
  make_dir(l);
  make_dir(l + "/a");
  write(l + "/a/file1", "one");
  make_dir(l + "/a/sub");
  write(l + "/a/sub/x", "x");
  set_time(l + "/a/sub");
  make_dir(l + "/b");
  write(l + "/b/y", "y");
  make_dir(l + "/c");
  write(l + "/c/cc", "cc");
  make_dir(l + "/ren");
  write(l + "/ren/z", "z");
  write(l + "/keep", "k");
  write(l + "/same", "s");
  write(l + "/gone", "g");
  write(l + "/meta", "m");
  ASSERT_EQ(::chmod((l + "/meta").c_str(), 0644), 0);
  for (const char* d : {"/a", "/b", "/c", "/ren", ""}) set_time(l + d);
}

// The upper as the guest's overlayfs leaves it after: file1 rewritten, a/new
// made, b emptied and made again (opaque) with w, gone deleted, ren renamed
// to moved, c replaced by a file, meta chmod'ed, same copied up unchanged.
void make_upper(const std::string& root) {
  make_dir(root);
  std::string u = root + "/upper";
  make_dir(u);
  make_dir(u + "/a");
  write(u + "/a/file1", "ONE");
  write(u + "/a/new", "new", kLowerTime + 50);
  mark(u + "/a/new", "user.note", "hi");
  set_time(u + "/a");
  make_dir(u + "/b");
  write(u + "/b/w", "w");
  mark(u + "/b", "trusted.overlay.opaque", "y");
  set_time(u + "/b");
  whiteout(u + "/gone");
  make_dir(u + "/moved");
  mark(u + "/moved", "trusted.overlay.redirect", "/ren");
  set_time(u + "/moved");
  whiteout(u + "/ren");
  write(u + "/c", "now a file");
  write(u + "/meta", "m");
  ASSERT_EQ(::chmod((u + "/meta").c_str(), 0600), 0);
  write(u + "/same", "s");
  ASSERT_EQ(::chmod((u + "/same").c_str(), 0644), 0);
  set_time(u, kLowerTime + 99);
}

std::string make_ext4(const TempDir& tmp, const std::string& from, const std::string& name) {
  std::string image = tmp / name;
  auto [rc, out] = test_commands::shell_output("truncate -s 32M " + image + " && mkfs.ext4 -q -F -d " + from + " " + image);
  EXPECT_EQ(rc, 0) << out;
  return image;
}

std::vector<std::string> lines_of(const std::vector<RootChange>& changes) {
  std::vector<std::string> out;
  for (const auto& c : changes) out.push_back(std::string(1, c.kind) + " " + c.path);
  return out;
}

class RootView : public ::testing::Test {
 protected:
  void SetUp() override {
    make_lower(tmp_ / "lower");
    auto lower = image::erofs_from_directory(tmp_ / "lower", tmp_ / "cache");
    ASSERT_TRUE(lower.ok()) << lower.error().message;
    lower_image_ = *lower;
  }
  // The diff of `upper_root` (a directory holding /upper) over the lower.
  Result<std::vector<RootChange>> diff_of(const std::string& upper_root) {
    std::string disk = make_ext4(tmp_, upper_root, "upper.ext4");
    MOAT_ASSIGN_OR_RETURN(auto lower, image::ErofsReader::open(lower_image_));
    MOAT_ASSIGN_OR_RETURN(auto upper, Ext4TreeReader::open(disk));
    MOAT_ASSIGN_OR_RETURN(auto upper_dir, upper.lookup(upper.root(), "upper"));
    OverlayView view(upper, upper_dir, lower);
    return diff_root(view);
  }

  TempDir tmp_;
  std::string lower_image_;
};

TEST_F(RootView, TheDiffNamesEveryChangeOnce) {
  make_upper(tmp_ / "u");
  auto changes = diff_of(tmp_ / "u");
  ASSERT_TRUE(changes.ok()) << changes.error().message;
  std::vector<std::string> want = {
      // No line for "/" itself (its mtime moved), as docker diff never
      // lists the root.
      "C /a/file1",   // contents (same size, same mtime)
      "A /a/new",
      "D /b/y",       // hidden by the opaque directory
      "A /b/w",
      "C /c",         // a directory became a file (what it held goes with it)
      "D /gone",
      "C /meta",      // mode only
      "A /moved",     // the renamed directory is new at its path...
      "A /moved/z",
      "D /ren",       // ...and gone from the old one (one line for the tree)
  };
  auto got = lines_of(*changes);
  std::sort(want.begin(), want.end(), [](const std::string& x, const std::string& y) {
    return x.substr(2) < y.substr(2) || (x.substr(2) == y.substr(2) && x < y);
  });
  EXPECT_EQ(got, want);
}

TEST_F(RootView, TheMergedViewHidesOverlaysOwnMarks) {
  make_upper(tmp_ / "u");
  std::string disk = make_ext4(tmp_, tmp_ / "u", "upper.ext4");
  auto lower = image::ErofsReader::open(lower_image_);
  ASSERT_TRUE(lower.ok()) << lower.error().message;
  auto upper = Ext4TreeReader::open(disk);
  ASSERT_TRUE(upper.ok()) << upper.error().message;
  auto upper_dir = upper->lookup(upper->root(), "upper");
  ASSERT_TRUE(upper_dir.ok() && *upper_dir);
  OverlayView view(*upper, *upper_dir, *lower);
  auto top = view.children(view.root());
  ASSERT_TRUE(top.ok()) << top.error().message;
  std::vector<std::string> names;
  for (const auto& [name, e] : *top) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c", "keep", "meta", "moved", "same"}));
  for (const auto& [name, e] : *top) {
    auto x = view.visible_xattrs(e);
    ASSERT_TRUE(x.ok()) << name << ": " << x.error().message;
    EXPECT_TRUE(x->empty()) << name << " shows " << x->front().first;
    if (name == "moved") {
      // Its lower part is /ren's: z shows through the rename.
      auto dir = view.child_dir(view.root(), name, e);
      ASSERT_TRUE(dir.ok()) << dir.error().message;
      EXPECT_TRUE(dir->redirected);
      auto inside = view.children(*dir);
      ASSERT_TRUE(inside.ok());
      ASSERT_EQ(inside->size(), 1u);
      EXPECT_EQ(inside->front().first, "z");
      EXPECT_TRUE(inside->front().second.lower.has_value());
    }
    if (name == "b") {
      auto dir = view.child_dir(view.root(), name, e);
      ASSERT_TRUE(dir.ok()) << dir.error().message;
      EXPECT_TRUE(dir->opaque);
      EXPECT_FALSE(dir->lower.has_value());
    }
  }
}

TEST_F(RootView, ADiskThatNeverBootedHasNoChanges) {
  std::string empty = tmp_ / "empty";
  make_dir(empty);
  auto changes = diff_of(empty);  // no /upper directory at all
  ASSERT_TRUE(changes.ok()) << changes.error().message;
  EXPECT_TRUE(changes->empty()) << ::testing::PrintToString(lines_of(*changes));
}

TEST_F(RootView, ARedirectOutOfTheLowerIsRefused) {
  for (std::string target : {"../ren", "/ren/../../etc", "a//b", "."}) {
    std::string root = tmp_ / ("r" + std::to_string(target.size()));
    make_dir(root);
    make_dir(root + "/upper");
    make_dir(root + "/upper/evil");
    mark(root + "/upper/evil", "trusted.overlay.redirect", target);
    auto changes = diff_of(root);
    ASSERT_FALSE(changes.ok()) << target;
    EXPECT_EQ(changes.error().code, EIO) << target;
    EXPECT_NE(changes.error().message.find("redirect"), std::string::npos) << changes.error().message;
  }
}

TEST_F(RootView, ADiskThatIsNotExt4IsRefused) {
  std::string junk = tmp_ / "junk.img";
  write(junk, std::string(1 << 20, 'j'));
  auto r = Ext4TreeReader::open(junk);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EINVAL) << r.error().message;
}

}  // namespace
}  // namespace moat::root_view
