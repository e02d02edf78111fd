// EROFS extended attributes: prefix compression, the shared xattr area and
// the per-inode xattr body.
//
// A name is stored as (prefix index, suffix), e.g. security.capability is
// (6, "capability"). A name=value pair used by more than one inode goes once
// into the shared area and inodes refer to it by a 4-byte id; the rest are
// stored inline after the inode.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "image/erofs/fs_tree.h"
#include "util/result.h"

namespace moat::image::erofs {

struct XattrName {
  std::uint8_t index = 0;
  std::string_view suffix;
};

// Splits a full name into its EROFS prefix index and suffix. Names without a
// prefix the kernel knows (user., trusted., security., POSIX ACLs) are
// rejected: the kernel would neither list nor return them.
Result<XattrName> split_xattr_name(std::string_view name);

// Size of one encoded entry: header, suffix and value, padded to 4 bytes.
std::size_t xattr_entry_size(std::size_t suffix_size, std::size_t value_size);
void append_xattr_entry(const XattrName& name, std::string_view value, std::string& out);

class SharedXattrs {
 public:
  // First pass: every inode's xattrs are counted once.
  void count(const Inode& inode);
  // Keeps the pairs used more than once and gives them offsets, in sorted
  // order so the result does not depend on traversal order.
  void finalize();

  // Byte offset of the pair in the shared area, or -1 if it is stored inline.
  std::int64_t offset_of(std::string_view name, std::string_view value) const;
  std::uint64_t size() const { return size_; }
  // The shared area's bytes.
  void encode(std::string& out) const;

 private:
  using Key = std::pair<std::string_view, std::string_view>;
  std::map<Key, std::int64_t> entries_;  // use count, then offset after finalize
  std::uint64_t size_ = 0;
};

struct XattrBodyPlan {
  std::size_t size = 0;        // bytes after the inode; 0 when there are no xattrs
  std::uint16_t icount = 0;    // i_xattr_icount
};

// Size of an inode's xattr body; fails if it cannot be encoded (over 256 KiB).
Result<XattrBodyPlan> plan_xattr_body(const Inode& inode, const SharedXattrs& shared);

// Appends the xattr body. `shared_base_id` is the id of shared offset 0.
void append_xattr_body(const Inode& inode, const SharedXattrs& shared,
                       std::uint32_t shared_base_id, std::string& out);

}  // namespace moat::image::erofs
