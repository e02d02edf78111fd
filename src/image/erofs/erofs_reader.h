// Reads uncompressed EROFS images: the ones moat's writer produces and what
// mkfs.erofs (erofs-utils 1.5) produces without compression.
//
// The image is untrusted. Every offset, count and size read from it is
// checked against the file size before it is used, nothing is allocated from
// an on-disk size without a bound, and no lookup follows a symlink. Reads use
// pread() on one file descriptor, so one reader can serve many threads: all
// methods are const and keep no per-call state.
//
// Supported: compact and extended inodes, FLAT_PLAIN and FLAT_INLINE data,
// directories, symlinks, devices, fifos, sockets, inline and shared xattrs
// with the standard prefix indexes. Compressed and chunk-based inodes, extra
// devices and long xattr prefixes are reported as "unsupported" errors
// (ENOTSUP), per inode where possible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::image {

using ErofsNid = std::uint64_t;

struct ErofsInode {
  ErofsNid nid = 0;
  std::uint32_t mode = 0;  // st_mode: type and permission bits
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint32_t nlink = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_sec = 0;
  std::uint32_t mtime_nsec = 0;
  std::uint32_t rdev = 0;  // devices: the kernel's new_encode_dev() form

  // Where the inode's parts are in the image (validated when it was read).
  std::uint8_t data_layout = 0;     // FLAT_PLAIN (0) or FLAT_INLINE (2)
  std::uint64_t data_offset = 0;    // byte offset of the first full block
  std::uint64_t inline_offset = 0;  // byte offset of the inline tail
  std::uint64_t xattr_offset = 0;   // byte offset of the xattr body
  std::uint32_t xattr_size = 0;     // 0 when the inode has no xattrs

  std::uint32_t rdev_major() const { return (rdev & 0xfff00) >> 8; }
  std::uint32_t rdev_minor() const { return (rdev & 0xff) | ((rdev >> 12) & 0xfff00); }
  std::uint32_t type() const { return mode & 0170000; }
  bool is_dir() const { return type() == 0040000; }
  bool is_regular() const { return type() == 0100000; }
  bool is_symlink() const { return type() == 0120000; }
};

// One directory entry as read_dir reports it. `name` is valid only during the
// callback. `next_offset` is where read_dir resumes after this entry (a
// position, not an index: block * block_size + entry in block).
struct ErofsDirent {
  std::string_view name;
  ErofsNid nid = 0;
  std::uint8_t file_type = 0;  // EROFS_FT_* (1 regular ... 7 symlink), 0 unknown
  std::uint64_t next_offset = 0;
};

struct ErofsSuperblock {
  std::uint32_t block_size = 0;
  ErofsNid root_nid = 0;
  std::uint64_t inodes = 0;
  std::uint32_t blocks = 0;
  std::uint64_t build_time = 0;
  std::uint32_t build_time_nsec = 0;
  std::uint32_t feature_compat = 0;
  std::uint32_t feature_incompat = 0;
};

class ErofsReader {
 public:
  // Opens and validates the image at `path` (read-only).
  static Result<ErofsReader> open(const std::string& path);
  // Same, over an already open descriptor (a file or memfd).
  static Result<ErofsReader> from_fd(UniqueFd fd);

  ErofsReader(ErofsReader&&) = default;
  ErofsReader& operator=(ErofsReader&&) = default;

  const ErofsSuperblock& superblock() const { return sb_; }
  ErofsNid root_nid() const { return sb_.root_nid; }
  std::uint64_t file_size() const { return file_size_; }

  Result<ErofsInode> inode(ErofsNid nid) const;

  // The entry `name` of directory `dir` (ENOTDIR if it is not one), or
  // nullopt. Binary search over the blocks' first names, then inside a block.
  Result<std::optional<ErofsNid>> lookup(ErofsNid dir, std::string_view name) const;
  Result<std::optional<ErofsNid>> lookup(const ErofsInode& dir, std::string_view name) const;

  // Resolves an absolute or root-relative path without following symlinks:
  // a symlink as a non-final component is ENOTDIR, a missing one ENOENT.
  Result<ErofsNid> lookup_path(std::string_view path) const;

  // Calls `fn` for each entry of `dir` from `offset` (0 = the start), in
  // on-disk order, "." and ".." included. `fn` returns false to stop.
  using DirCallback = std::function<bool(const ErofsDirent&)>;
  Status read_dir(ErofsNid dir, const DirCallback& fn, std::uint64_t offset = 0) const;
  Status read_dir(const ErofsInode& dir, const DirCallback& fn, std::uint64_t offset = 0) const;

  // Copies up to `len` bytes from `offset` of a regular file (or any inode's
  // data); returns the count, 0 at or after the end.
  Result<std::size_t> read(ErofsNid nid, std::uint64_t offset, void* buf, std::size_t len) const;
  Result<std::size_t> read(const ErofsInode& inode, std::uint64_t offset, void* buf,
                           std::size_t len) const;

  Result<std::string> readlink(ErofsNid nid) const;
  Result<std::string> readlink(const ErofsInode& inode) const;

  // All extended attributes as (full name, value), inline ones first, then
  // shared ones, in on-disk order.
  using Xattrs = std::vector<std::pair<std::string, std::string>>;
  Result<Xattrs> xattrs(ErofsNid nid) const;
  Result<Xattrs> xattrs(const ErofsInode& inode) const;

 private:
  ErofsReader(UniqueFd fd, std::uint64_t file_size) : fd_(std::move(fd)), file_size_(file_size) {}

  Status load_superblock();
  // pread of exactly `len` bytes inside the file, or an error.
  Status pread_exact(std::uint64_t offset, void* buf, std::size_t len) const;
  // Reads directory block `index` (its valid length is returned).
  Result<std::size_t> read_dir_block(const ErofsInode& dir, std::uint64_t index,
                                     std::vector<unsigned char>& block) const;
  Status decode_xattr_entries(const unsigned char* p, std::size_t len, bool one, Xattrs& out) const;

  UniqueFd fd_;
  std::uint64_t file_size_ = 0;
  ErofsSuperblock sb_;
  std::uint64_t meta_base_ = 0;   // byte offset of nid 0
  std::uint64_t xattr_base_ = 0;  // byte offset of shared xattr id 0
};

// Bounds the readers' users apply when they walk a whole image.
inline constexpr std::size_t kErofsMaxSymlink = 4095;  // PATH_MAX - 1
inline constexpr std::size_t kErofsMaxPathComponents = 4096;

}  // namespace moat::image
