#include "image/erofs/erofs_layout.h"

#include <cerrno>
#include <deque>
#include <map>

#include "image/erofs/erofs_dir.h"

namespace moat::image::erofs {
namespace {

constexpr std::uint32_t kMaxU16 = 0xFFFF;

InodePlan new_plan(const Inode* inode, const Inode* parent, std::uint32_t nlink) {
  InodePlan plan;
  plan.inode = inode;
  plan.parent = parent;
  plan.nlink = nlink;
  return plan;
}

// Breadth-first walk: assigns on-disk order and counts links.
Status collect_inodes(const FsTree& tree, std::size_t max_inodes, Layout& layout) {
  const Inode* root = &tree.root();
  if (!root->is_dir()) return make_error("the root is not a directory", ENOTDIR);
  layout.inodes.push_back(new_plan(root, root, 2));
  layout.index.emplace(root, 0);
  std::deque<std::size_t> queue{0};
  while (!queue.empty()) {
    const Inode* dir = layout.inodes[queue.front()].inode;
    queue.pop_front();
    for (const auto& [name, child] : dir->children) {
      MOAT_TRY(validate_entry_name(name));
      if (!child) return make_error("null inode in tree", EINVAL);
      auto [it, inserted] = layout.index.emplace(child.get(), layout.inodes.size());
      if (!inserted) {
        if (child->is_dir()) return make_error("directory '" + name + "' linked twice", EMLINK);
        layout.inodes[it->second].nlink++;
        continue;
      }
      if (layout.inodes.size() >= max_inodes) return make_error("too many inodes", EFBIG);
      if (auto st = validate_inode(*child); !st.ok()) return st.error().wrap(name);
      layout.inodes.push_back(new_plan(child.get(), dir, 1));
      if (child->is_dir()) queue.push_back(layout.inodes.size() - 1);
    }
  }
  for (std::size_t i = 0; i < layout.inodes.size(); ++i) {
    InodePlan& plan = layout.inodes[i];
    plan.ino = static_cast<std::uint32_t>(i + 1);
    if (plan.inode->is_dir()) {
      std::uint64_t subdirs = 0;
      for (const auto& [name, child] : plan.inode->children) subdirs += child->is_dir();
      if (subdirs + 2 > 0xFFFFFFFFu) return make_error("too many subdirectories", EMLINK);
      plan.nlink = static_cast<std::uint32_t>(subdirs + 2);
    }
  }
  return validate_inode(*root);
}

// The most common mtime: inodes that share it can be compact.
Timespec pick_build_time(const Layout& layout) {
  std::map<Timespec, std::size_t> counts;
  for (const InodePlan& plan : layout.inodes) ++counts[plan.inode->mtime];
  Timespec best;
  std::size_t best_count = 0;
  for (const auto& [time, count] : counts) {
    if (count > best_count) best = time, best_count = count;  // ties: earliest wins
  }
  return best;
}

bool needs_extended(const InodePlan& plan, const Timespec& build_time) {
  const Inode& inode = *plan.inode;
  return inode.uid > kMaxU16 || inode.gid > kMaxU16 || plan.nlink > kMaxU16 ||
         plan.size > 0xFFFFFFFFu || inode.mtime != build_time;
}

// Bytes that may go inline after the inode: the partial last block.
std::uint64_t tail_candidate(const InodePlan& plan) {
  switch (plan.inode->type) {
    case FileType::kRegular:
    case FileType::kDirectory:
    case FileType::kSymlink: return plan.size % kBlockSize;
    default: return 0;
  }
}

// Metadata allocator: records (an inode, its xattrs and inline tail) go into
// the first of a few partly filled blocks where they fit, so padding left
// before a record that would cross a block boundary is filled by later, smaller
// records. Deterministic: it depends only on the sequence of record sizes.
class MetaAllocator {
 public:
  MetaAllocator() { open_.push_back({0, kFirstInodeOffset}); }

  // Byte offset for a record of `size` bytes, 32-byte aligned, not crossing a
  // block boundary unless it is larger than a block.
  std::uint64_t allocate(std::uint64_t size) {
    if (size > kBlockSize) return allocate_large(size);
    for (OpenBlock& block : open_) {
      std::uint64_t at = round_up(block.used, kInodeSlotSize);
      if (at + size <= kBlockSize) {
        block.used = at + size;
        return block.index * kBlockSize + at;
      }
    }
    open_block(next_block_++, size);
    return (next_block_ - 1) * kBlockSize;
  }

  std::uint64_t end() const { return next_block_ * kBlockSize; }

 private:
  struct OpenBlock {
    std::uint64_t index;
    std::uint64_t used;
  };
  static constexpr std::size_t kMaxOpen = 32;

  std::uint64_t allocate_large(std::uint64_t size) {
    std::uint64_t at = next_block_ * kBlockSize;
    next_block_ += (size + kBlockSize - 1) / kBlockSize;
    if (size % kBlockSize) open_block(next_block_ - 1, size % kBlockSize);
    return at;
  }

  void open_block(std::uint64_t index, std::uint64_t used) {
    open_.push_back({index, used});
    if (open_.size() > kMaxOpen) {
      // Retire the fullest block; it has the least room left to offer.
      auto fullest = open_.begin();
      for (auto it = open_.begin(); it != open_.end(); ++it) {
        if (it->used > fullest->used) fullest = it;
      }
      open_.erase(fullest);
    }
  }

  std::vector<OpenBlock> open_;
  std::uint64_t next_block_ = 1;
};

// Places one inode. The partial last block goes inline when it fits in a
// block together with the inode; otherwise it takes a data block.
void place_inode(InodePlan& plan, MetaAllocator& meta) {
  std::uint64_t base = plan.inode_size() + plan.xattr.size;
  std::uint64_t tail = tail_candidate(plan);
  plan.inline_tail = tail > 0 && base + tail <= kBlockSize;
  // A big tail that only fits by opening a fresh metadata block is still
  // better inline: the rest of that block is filled by later records.
  plan.offset = meta.allocate(base + plan.tail_size());
  plan.data_blocks = plan.size / kBlockSize + (tail && !plan.inline_tail ? 1 : 0);
}

Status size_inode(InodePlan& plan, const Layout& layout) {
  const Inode& inode = *plan.inode;
  if (inode.is_dir()) {
    plan.size = dir_size(pack_dir_blocks(sorted_dirents(inode, *plan.parent)));
  } else {
    plan.size = inode.size();
  }
  MOAT_ASSIGN_OR_RETURN(plan.xattr, plan_xattr_body(inode, layout.shared));
  plan.extended = needs_extended(plan, layout.build_time);
  return ok_status();
}

}  // namespace

Result<Layout> plan_layout(const FsTree& tree, std::size_t max_inodes) {
  Layout layout;
  MOAT_TRY(collect_inodes(tree, max_inodes, layout));
  if (layout.inodes.size() > 0xFFFFFFFFu) return make_error("too many inodes", EFBIG);
  layout.build_time = pick_build_time(layout);
  for (const InodePlan& plan : layout.inodes) layout.shared.count(*plan.inode);
  layout.shared.finalize();

  MetaAllocator meta;
  for (InodePlan& plan : layout.inodes) {
    MOAT_TRY(size_inode(plan, layout));
    place_inode(plan, meta);
  }
  // The root nid is a u16 in the superblock; the root is placed first.
  if (layout.inodes.front().nid() > kMaxU16) return make_error("root nid out of range", EFBIG);

  layout.shared_offset = layout.shared.size() ? meta.allocate(layout.shared.size()) : meta.end();
  std::uint64_t block = meta.end() / kBlockSize;
  layout.data_start_block = block;
  for (InodePlan& plan : layout.inodes) {
    if (plan.data_blocks == 0) continue;
    if (block + plan.data_blocks >= kNullAddr) return make_error("image too large", EFBIG);
    plan.start_block = static_cast<std::uint32_t>(block);
    block += plan.data_blocks;
  }
  layout.total_blocks = block;
  return layout;
}

}  // namespace moat::image::erofs
