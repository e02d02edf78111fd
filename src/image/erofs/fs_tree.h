// In-memory model of a root filesystem: what the layer applier builds and
// the EROFS writer serialises.
//
// Inodes are shared_ptr so that hardlinks are simply several directory
// entries holding the same Inode; the link count is derived from the tree
// when it is written, never stored. Directories cannot be hardlinked, so the
// ownership graph is a tree apart from those shared leaves.
//
// File contents are not held here: a regular file refers to a byte range of a
// spool file (see spool.h), so a tree for a 1 GiB image costs metadata only.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat::image {

enum class FileType : std::uint8_t {
  kRegular,
  kDirectory,
  kSymlink,
  kCharDevice,
  kBlockDevice,
  kFifo,
  kSocket,
};

const char* file_type_name(FileType type);

struct Timespec {
  std::int64_t sec = 0;
  std::uint32_t nsec = 0;  // < 1e9
  auto operator<=>(const Timespec&) const = default;
};

// A byte range of the spool file.
struct ContentRef {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};

// Limits every tree obeys, whatever built it. They are the kernel's limits
// (NAME_MAX, PATH_MAX, XATTR_SIZE_MAX) and the encoding limits of EROFS.
inline constexpr std::size_t kMaxNameLength = 255;
inline constexpr std::size_t kMaxSymlinkLength = 4095;
inline constexpr std::size_t kMaxXattrNameLength = 255;
inline constexpr std::size_t kMaxXattrValueSize = 65535;
inline constexpr std::uint32_t kMaxDevMajor = (1u << 12) - 1;
inline constexpr std::uint32_t kMaxDevMinor = (1u << 20) - 1;

struct Inode;
using InodePtr = std::shared_ptr<Inode>;

// std::map<std::string> orders keys bytewise (char_traits<char> compares as
// unsigned char), which is exactly the order EROFS directories must have.
using DirEntries = std::map<std::string, InodePtr, std::less<>>;

struct Inode {
  FileType type = FileType::kRegular;
  std::uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky (07777)
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  Timespec mtime;
  std::uint32_t rdev_major = 0;  // devices only
  std::uint32_t rdev_minor = 0;
  std::map<std::string, std::string> xattrs;  // full names, e.g. "security.capability"
  std::string symlink_target;                 // symlinks only
  ContentRef content;                         // regular files only
  DirEntries children;                        // directories only

  bool is_dir() const { return type == FileType::kDirectory; }
  std::uint64_t size() const;  // i_size as stat reports it
};

InodePtr make_inode(FileType type, std::uint32_t mode = 0);

// Checks one directory entry name: 1..255 bytes, no '/', no NUL, not "." or "..".
Status validate_entry_name(std::string_view name);

// Checks the inode's own fields against the limits above (names of xattrs,
// sizes, device numbers, symlink target).
Status validate_inode(const Inode& inode);

class FsTree {
 public:
  // An empty root directory, 0755 root:root, mtime 0.
  FsTree();

  Inode& root() { return *root_; }
  const Inode& root() const { return *root_; }
  const InodePtr& root_ptr() const { return root_; }

 private:
  InodePtr root_;
};

}  // namespace moat::image
