// EROFS directory contents: sorted dirents packed into 4 KiB blocks.
//
// Each block holds an array of 12-byte dirents followed by their names (no
// NULs). The kernel binary-searches blocks by their first name, so entries are
// sorted bytewise across the whole directory and a name never spans blocks.
// "." and ".." are real entries, sorted with the rest.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "image/erofs/fs_tree.h"

namespace moat::image::erofs {

struct Dirent {
  std::string_view name;
  const Inode* inode;
};

// The directory's entries including "." and "..", in on-disk order.
std::vector<Dirent> sorted_dirents(const Inode& dir, const Inode& parent);

struct DirBlock {
  std::size_t first = 0;  // index into the dirent vector
  std::size_t count = 0;
  std::size_t bytes = 0;  // used bytes (dirents + names)
};

// Greedy packing; every block but the last is padded to the block size.
std::vector<DirBlock> pack_dir_blocks(const std::vector<Dirent>& dirents);

// i_size of the directory: whole blocks, plus the used part of the last.
std::uint64_t dir_size(const std::vector<DirBlock>& blocks);

std::uint8_t dirent_file_type(FileType type);

// Appends one block's bytes (exactly `block.bytes`, unpadded).
void append_dir_block(const std::vector<Dirent>& dirents, const DirBlock& block,
                      const std::function<std::uint64_t(const Inode*)>& nid_of,
                      std::string& out);

}  // namespace moat::image::erofs
