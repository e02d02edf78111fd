// Test support for the image component: temporary directories, fsck.erofs,
// kernel mounts, and a comparison of a mounted image against an FsTree.
// Header-only so each image test binary can include it.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "image/erofs/erofs_writer.h"
#include "image/erofs/fs_tree.h"
#include "image/erofs/spool.h"
#include "util/unique_fd.h"

namespace moat::image::testing {

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "moat-image-XXXXXX").string();
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

inline int run_quiet(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

inline bool have_fsck_erofs() { return run_quiet("command -v fsck.erofs") == 0; }

// fsck.erofs output on failure, empty on success.
inline std::string fsck_erofs(const std::string& image) {
  std::string out = image + ".fsck";
  int rc = std::system(("fsck.erofs " + image + " >" + out + " 2>&1").c_str());
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  std::remove(out.c_str());
  return rc == 0 ? "" : "fsck.erofs failed: " + ss.str();
}

inline bool can_mount_erofs() {
  if (::geteuid() != 0) return false;
  std::ifstream fs("/proc/filesystems");
  std::string line;
  while (std::getline(fs, line)) {
    if (line.find("erofs") != std::string::npos) return true;
  }
  return run_quiet("modprobe erofs") == 0;
}

// Mounts an image read-only through a loop device for the object's lifetime.
class Mount {
 public:
  Mount(const std::string& image, const std::string& dir) : dir_(dir) {
    std::filesystem::create_directories(dir);
    ok_ = run_quiet("mount -t erofs -o loop,ro " + image + " " + dir) == 0;
  }
  ~Mount() {
    // A lazy unmount as the fallback, so a failed test cannot leave it behind.
    if (ok_ && run_quiet("umount " + dir_) != 0) run_quiet("umount -l " + dir_);
  }
  bool ok() const { return ok_; }

 private:
  std::string dir_;
  bool ok_ = false;
};

// Writes `tree` to `path`, returning the status.
inline Result<ErofsStats> write_image(const FsTree& tree, const Spool& spool,
                                      const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_error("open " + path);
  auto stats = write_erofs(tree, spool, fd);
  ::close(fd);
  return stats;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::map<std::string, std::string> list_xattrs(const std::string& path) {
  std::map<std::string, std::string> out;
  std::vector<char> names(1 << 16);
  ssize_t n = ::llistxattr(path.c_str(), names.data(), names.size());
  for (ssize_t i = 0; i < n;) {
    std::string name(names.data() + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    std::vector<char> value(1 << 16);
    ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    out[name] = v >= 0 ? std::string(value.data(), static_cast<std::size_t>(v)) : "<error>";
  }
  return out;
}

inline mode_t type_bits(FileType type) {
  switch (type) {
    case FileType::kRegular: return S_IFREG;
    case FileType::kDirectory: return S_IFDIR;
    case FileType::kSymlink: return S_IFLNK;
    case FileType::kCharDevice: return S_IFCHR;
    case FileType::kBlockDevice: return S_IFBLK;
    case FileType::kFifo: return S_IFIFO;
    case FileType::kSocket: return S_IFSOCK;
  }
  return 0;
}

// Compares every attribute of the mounted tree at `path` with `inode`,
// recursively; `inos` records the st_ino of each Inode to check hardlinks.
class TreeComparer {
 public:
  explicit TreeComparer(const Spool& spool) : spool_(spool) {}

  void compare(const Inode& inode, const std::string& path) {
    SCOPED_TRACE(path);
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0) << "missing";
    EXPECT_EQ(st.st_mode & S_IFMT, type_bits(inode.type));
    EXPECT_EQ(st.st_mode & 07777, inode.mode);
    EXPECT_EQ(st.st_uid, inode.uid);
    EXPECT_EQ(st.st_gid, inode.gid);
    EXPECT_EQ(st.st_mtim.tv_sec, inode.mtime.sec);
    EXPECT_EQ(static_cast<std::uint32_t>(st.st_mtim.tv_nsec), inode.mtime.nsec);
    EXPECT_EQ(list_xattrs(path), inode.xattrs);
    auto [it, first] = inos_.emplace(&inode, st.st_ino);
    EXPECT_EQ(it->second, st.st_ino) << "hardlink does not share the inode";
    if (!first) return;
    if (!inode.is_dir()) nlinks_[&inode] = st.st_nlink;
    switch (inode.type) {
      case FileType::kRegular: compare_content(inode, path, st); break;
      case FileType::kSymlink: {
        std::vector<char> buf(8192);
        ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
        ASSERT_GE(n, 0);
        EXPECT_EQ(std::string(buf.data(), static_cast<std::size_t>(n)), inode.symlink_target);
        break;
      }
      case FileType::kCharDevice:
      case FileType::kBlockDevice:
        EXPECT_EQ(major(st.st_rdev), inode.rdev_major);
        EXPECT_EQ(minor(st.st_rdev), inode.rdev_minor);
        break;
      case FileType::kDirectory: compare_dir(inode, path, st); break;
      default: break;
    }
  }

  // After count_links() and compare(): checks link counts of non-directories.
  void check_nlink() {
    for (const auto& [inode, count] : expected_links_) {
      EXPECT_EQ(nlinks_[inode], count) << "nlink of inode";
    }
  }

  void count_links(const Inode& dir) {
    for (const auto& [name, child] : dir.children) {
      if (child->is_dir()) {
        count_links(*child);
      } else {
        ++expected_links_[child.get()];
      }
    }
  }

 private:
  void compare_content(const Inode& inode, const std::string& path, const struct stat& st) {
    ASSERT_EQ(static_cast<std::uint64_t>(st.st_size), inode.content.size);
    UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(file.valid());
    int fd = file.get();
    std::vector<char> got(1 << 20), want(1 << 20);
    std::uint64_t off = 0;
    while (off < inode.content.size) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(got.size(), inode.content.size - off));
      ASSERT_EQ(::pread(fd, got.data(), n, static_cast<off_t>(off)), static_cast<ssize_t>(n));
      ASSERT_TRUE(spool_.read(inode.content.offset + off, want.data(), n).ok());
      ASSERT_EQ(std::memcmp(got.data(), want.data(), n), 0) << "content differs at " << off;
      off += n;
    }
  }

  void compare_dir(const Inode& inode, const std::string& path, const struct stat& st) {
    std::size_t subdirs = 0;
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    std::vector<std::string> want;
    for (const auto& [name, child] : inode.children) {
      want.push_back(name);
      subdirs += child->is_dir();
    }
    EXPECT_EQ(names, want);
    EXPECT_EQ(st.st_nlink, subdirs + 2);
    for (const auto& [name, child] : inode.children) {
      // Deep trees: paths may exceed PATH_MAX in principle, but tests keep
      // them below it.
      compare(*child, path + "/" + name);
    }
  }

  const Spool& spool_;
  std::map<const Inode*, ino_t> inos_;
  std::map<const Inode*, nlink_t> nlinks_;
  std::map<const Inode*, nlink_t> expected_links_;
};

}  // namespace moat::image::testing
