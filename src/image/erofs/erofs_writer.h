// Writes an FsTree as an uncompressed EROFS image (4 KiB blocks) that the
// Linux kernel mounts and fsck.erofs accepts.
//
// The output is a function of the tree and the file contents only: no uuid,
// no clock, a fixed inode order. Building the same tree twice gives identical
// bytes. Zero blocks are left as holes in the output file.
#pragma once

#include <cstdint>

#include "image/erofs/fs_tree.h"
#include "image/erofs/spool.h"
#include "util/result.h"

namespace moat::image {

struct ErofsStats {
  std::uint64_t inodes = 0;
  std::uint64_t blocks = 0;
  std::uint64_t bytes = 0;  // image size
};

// Writes the image to `fd`, which must be a regular file (or memfd) opened for
// writing; it is truncated first. Regular-file contents are read from `spool`.
Result<ErofsStats> write_erofs(const FsTree& tree, const Spool& spool, int fd);

}  // namespace moat::image
