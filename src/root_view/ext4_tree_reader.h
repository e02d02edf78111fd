// Reads an ext4 filesystem image (a sandbox's upper disk) read-only through
// libext2fs: inodes, directory entries, file contents, symlink targets and
// extended attributes. No mount, no kernel involvement.
//
// The image was written by a guest and is untrusted. libext2fs checks the
// superblock and group descriptors; this layer bounds what it hands on
// (names, symlink targets, xattr counts and sizes, directory sizes) and
// refuses a filesystem whose journal still needs replaying, whose contents
// would be stale. It runs inside a confined helper process, never in
// libmoat's own (docs/snapshots.md, "Reading a guest's disk").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/result.h"

// libext2fs's handle type, kept out of this header (its macros are many).
struct struct_ext2_filsys;

namespace moat::root_view {

using Ino = std::uint32_t;

struct Ext4Inode {
  Ino ino = 0;
  std::uint32_t mode = 0;  // st_mode, type bits included
  std::uint32_t uid = 0, gid = 0;
  std::uint32_t nlink = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_sec = 0;
  std::uint32_t mtime_nsec = 0;
  std::uint32_t rdev_major = 0, rdev_minor = 0;
  std::uint32_t type() const { return mode & 0170000; }
  bool is_dir() const { return type() == 0040000; }
  bool is_regular() const { return type() == 0100000; }
  bool is_symlink() const { return type() == 0120000; }
  // overlayfs's whiteout: a character device 0:0.
  bool is_whiteout() const { return type() == 0020000 && rdev_major == 0 && rdev_minor == 0; }
};

using Xattrs = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::size_t kMaxDirEntries = 1 << 20;
inline constexpr std::size_t kMaxSymlinkTarget = 4095;
inline constexpr std::size_t kMaxXattrs = 1024;
inline constexpr std::size_t kMaxXattrValue = 64 * 1024;

class Ext4TreeReader {
 public:
  // Opens `image` read-only. EUCLEAN when the journal needs recovery (the
  // guest did not unmount it cleanly), EINVAL when it is not ext2/3/4.
  static Result<Ext4TreeReader> open(const std::string& image);

  Ext4TreeReader(Ext4TreeReader&& other) noexcept;
  Ext4TreeReader& operator=(Ext4TreeReader&&) = delete;
  Ext4TreeReader(const Ext4TreeReader&) = delete;
  ~Ext4TreeReader();

  Ino root() const;
  Result<Ext4Inode> inode(Ino ino) const;
  Result<std::optional<Ino>> lookup(Ino dir, const std::string& name) const;
  // The entries of a directory (not "." or ".."), sorted by name.
  Result<std::vector<std::pair<std::string, Ino>>> list(Ino dir) const;
  // Up to `len` bytes of a regular file from `offset`; 0 at the end.
  Result<std::size_t> read(Ino ino, std::uint64_t offset, void* buf, std::size_t len) const;
  Result<std::string> readlink(const Ext4Inode& inode) const;
  Result<Xattrs> xattrs(Ino ino) const;

 private:
  explicit Ext4TreeReader(struct_ext2_filsys* fs) : fs_(fs) {}
  Error ext2_error(const std::string& what, long code) const;

  struct_ext2_filsys* fs_ = nullptr;
};

}  // namespace moat::root_view
