// Layout of an EROFS image: which inode goes where, in what form, and which
// blocks hold its data. Planning is separate from writing so that every
// address (nids in dirents, block numbers in inodes, the superblock's counts)
// is known before the first byte is written and the image can be streamed out
// in one sequential pass.
//
// Policy, chosen for determinism and size:
//  - inodes in breadth-first order, children in name order; root first (nid 36);
//  - compact 32-byte inodes unless a field does not fit or the mtime differs
//    from the image's build time, which is the most common mtime in the tree;
//  - the last partial block of a file, directory or symlink is stored inline
//    after its inode when that wastes less space than giving it a block;
//  - inline records never cross a block boundary (the kernel requires it).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "image/erofs/erofs_format.h"
#include "image/erofs/erofs_xattr.h"
#include "image/erofs/fs_tree.h"
#include "util/result.h"

namespace moat::image::erofs {

struct InodePlan {
  const Inode* inode = nullptr;
  const Inode* parent = nullptr;  // ".." for directories
  std::uint32_t nlink = 0;
  std::uint32_t ino = 0;
  std::uint64_t size = 0;  // i_size
  bool extended = false;
  bool inline_tail = false;
  XattrBodyPlan xattr;
  std::uint64_t offset = 0;         // byte offset of the inode; nid = offset / 32
  std::uint64_t data_blocks = 0;    // blocks in the data area
  std::uint32_t start_block = kNullAddr;

  std::uint64_t nid() const { return offset / kInodeSlotSize; }
  std::size_t inode_size() const { return extended ? kExtendedInodeSize : kCompactInodeSize; }
  std::size_t tail_size() const { return inline_tail ? size % kBlockSize : 0; }
};

struct Layout {
  std::vector<InodePlan> inodes;  // on-disk order, root first
  std::unordered_map<const Inode*, std::size_t> index;
  SharedXattrs shared;
  std::uint64_t shared_offset = 0;  // byte offset of the shared xattr area
  std::uint64_t data_start_block = 0;
  std::uint64_t total_blocks = 0;
  Timespec build_time;

  std::uint64_t nid_of(const Inode* inode) const { return inodes[index.at(inode)].nid(); }
};

// Validates the tree against what EROFS and the kernel accept and plans the
// image. `max_inodes` bounds the work done on a hostile tree.
Result<Layout> plan_layout(const FsTree& tree, std::size_t max_inodes = 1u << 24);

}  // namespace moat::image::erofs
