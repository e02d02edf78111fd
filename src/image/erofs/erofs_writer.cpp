#include "image/erofs/erofs_writer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "image/erofs/block_sink.h"
#include "image/erofs/erofs_dir.h"
#include "image/erofs/erofs_format.h"
#include "image/erofs/erofs_layout.h"

namespace moat::image {
namespace {

using namespace erofs;

std::uint16_t mode_bits(const Inode& inode) {
  std::uint32_t type = 0;
  switch (inode.type) {
    case FileType::kRegular: type = S_IFREG; break;
    case FileType::kDirectory: type = S_IFDIR; break;
    case FileType::kSymlink: type = S_IFLNK; break;
    case FileType::kCharDevice: type = S_IFCHR; break;
    case FileType::kBlockDevice: type = S_IFBLK; break;
    case FileType::kFifo: type = S_IFIFO; break;
    case FileType::kSocket: type = S_IFSOCK; break;
  }
  return static_cast<std::uint16_t>(type | (inode.mode & 07777));
}

std::uint32_t i_u(const InodePlan& plan) {
  const Inode& inode = *plan.inode;
  switch (inode.type) {
    case FileType::kCharDevice:
    case FileType::kBlockDevice: return encode_dev(inode.rdev_major, inode.rdev_minor);
    case FileType::kFifo:
    case FileType::kSocket: return 0;
    default: return plan.start_block;
  }
}

std::string encode_superblock(const Layout& layout) {
  unsigned char b[kSuperblockSize] = {};
  put_le32(b + sb::kMagic, kMagic);
  put_le32(b + sb::kFeatureCompat, kFeatureCompatMtime);
  b[sb::kBlkSzBits] = kBlockSizeBits;
  put_le16(b + sb::kRootNid, static_cast<std::uint16_t>(layout.inodes.front().nid()));
  put_le64(b + sb::kInos, layout.inodes.size());
  put_le64(b + sb::kBuildTime, static_cast<std::uint64_t>(layout.build_time.sec));
  put_le32(b + sb::kBuildTimeNsec, layout.build_time.nsec);
  put_le32(b + sb::kBlocks, static_cast<std::uint32_t>(layout.total_blocks));
  put_le32(b + sb::kMetaBlkAddr, 0);
  std::uint32_t xattr_blkaddr =
      layout.shared.size() ? static_cast<std::uint32_t>(layout.shared_offset / kBlockSize) : 0;
  put_le32(b + sb::kXattrBlkAddr, xattr_blkaddr);
  return std::string(reinterpret_cast<const char*>(b), sizeof b);
}

void append_inode_header(const InodePlan& plan, std::string& out) {
  const Inode& inode = *plan.inode;
  std::uint16_t layout = plan.inline_tail ? kDataLayoutFlatInline : kDataLayoutFlatPlain;
  unsigned char b[kExtendedInodeSize] = {};
  put_le16(b + 0, inode_format(plan.extended, layout));
  put_le16(b + 2, plan.xattr.icount);
  put_le16(b + 4, mode_bits(inode));
  if (plan.extended) {
    put_le64(b + 8, plan.size);
    put_le32(b + 16, i_u(plan));
    put_le32(b + 20, plan.ino);
    put_le32(b + 24, inode.uid);
    put_le32(b + 28, inode.gid);
    put_le64(b + 32, static_cast<std::uint64_t>(inode.mtime.sec));
    put_le32(b + 40, inode.mtime.nsec);
    put_le32(b + 44, plan.nlink);
  } else {
    // The mtime comes from the superblock's build time; offset 12 stays 0.
    put_le16(b + 6, static_cast<std::uint16_t>(plan.nlink));
    put_le32(b + 8, static_cast<std::uint32_t>(plan.size));
    put_le32(b + 16, i_u(plan));
    put_le32(b + 20, plan.ino);
    put_le16(b + 24, static_cast<std::uint16_t>(inode.uid));
    put_le16(b + 26, static_cast<std::uint16_t>(inode.gid));
  }
  out.append(reinterpret_cast<const char*>(b), plan.inode_size());
}

class ImageEmitter {
 public:
  ImageEmitter(const Layout& layout, const Spool& spool, int fd)
      : layout_(layout), spool_(spool), sink_(fd) {}

  Status run() {
    MOAT_TRY(sink_.pad_to(kSuperblockOffset));
    MOAT_TRY(sink_.write(encode_superblock(layout_)));
    MOAT_TRY(emit_metadata());
    for (const InodePlan& plan : layout_.inodes) MOAT_TRY(emit_data(plan));
    MOAT_TRY(sink_.pad_to(layout_.total_blocks * kBlockSize));
    return sink_.finish();
  }

 private:
  std::uint32_t shared_base_id() const {
    return static_cast<std::uint32_t>(layout_.shared_offset % kBlockSize / 4);
  }

  // Inode records and the shared xattr area, in address order (the allocator
  // fills gaps, so that is not the inode order).
  Status emit_metadata() {
    constexpr std::size_t kShared = static_cast<std::size_t>(-1);
    std::vector<std::pair<std::uint64_t, std::size_t>> records;
    records.reserve(layout_.inodes.size() + 1);
    for (std::size_t i = 0; i < layout_.inodes.size(); ++i) {
      records.emplace_back(layout_.inodes[i].offset, i);
    }
    if (layout_.shared.size()) records.emplace_back(layout_.shared_offset, kShared);
    std::sort(records.begin(), records.end());
    for (const auto& [offset, i] : records) {
      if (i != kShared) {
        MOAT_TRY(emit_inode(layout_.inodes[i]));
        continue;
      }
      MOAT_TRY(sink_.pad_to(offset));
      std::string shared;
      layout_.shared.encode(shared);
      MOAT_TRY(sink_.write(shared));
    }
    return ok_status();
  }

  Status emit_inode(const InodePlan& plan) {
    MOAT_TRY(sink_.pad_to(plan.offset));
    std::string rec;
    append_inode_header(plan, rec);
    append_xattr_body(*plan.inode, layout_.shared, shared_base_id(), rec);
    if (plan.inline_tail) MOAT_TRY(append_tail(plan, rec));
    return sink_.write(rec);
  }

  Status append_tail(const InodePlan& plan, std::string& out) {
    const Inode& inode = *plan.inode;
    std::size_t tail = plan.tail_size();
    std::uint64_t from = plan.size - tail;
    switch (inode.type) {
      case FileType::kSymlink: out.append(inode.symlink_target, from, tail); return ok_status();
      case FileType::kDirectory: {
        auto dirents = sorted_dirents(inode, *plan.parent);
        auto blocks = pack_dir_blocks(dirents);
        append_dir_block(dirents, blocks.back(), nid_fn(), out);
        return ok_status();
      }
      default: {
        std::size_t at = out.size();
        out.resize(at + tail);
        return spool_.read(inode.content.offset + from, out.data() + at, tail);
      }
    }
  }

  std::function<std::uint64_t(const Inode*)> nid_fn() const {
    return [this](const Inode* inode) { return layout_.nid_of(inode); };
  }

  Status emit_data(const InodePlan& plan) {
    if (plan.data_blocks == 0) return ok_status();
    std::uint64_t start = std::uint64_t{plan.start_block} * kBlockSize;
    MOAT_TRY(sink_.pad_to(start));
    std::uint64_t bytes = plan.inline_tail ? plan.size - plan.tail_size() : plan.size;
    switch (plan.inode->type) {
      case FileType::kSymlink: MOAT_TRY(sink_.write(plan.inode->symlink_target)); break;
      case FileType::kDirectory: MOAT_TRY(emit_dir_blocks(plan)); break;
      default: MOAT_TRY(sink_.copy_from(spool_.fd(), plan.inode->content.offset, bytes)); break;
    }
    return sink_.pad_to(start + plan.data_blocks * kBlockSize);
  }

  Status emit_dir_blocks(const InodePlan& plan) {
    auto dirents = sorted_dirents(*plan.inode, *plan.parent);
    auto blocks = pack_dir_blocks(dirents);
    std::size_t n = plan.inline_tail ? blocks.size() - 1 : blocks.size();
    std::uint64_t start = std::uint64_t{plan.start_block} * kBlockSize;
    std::string buf;
    for (std::size_t i = 0; i < n; ++i) {
      buf.clear();
      append_dir_block(dirents, blocks[i], nid_fn(), buf);
      MOAT_TRY(sink_.pad_to(start + i * kBlockSize));
      MOAT_TRY(sink_.write(buf));
    }
    return ok_status();
  }

  const Layout& layout_;
  const Spool& spool_;
  BlockSink sink_;
};

}  // namespace

Result<ErofsStats> write_erofs(const FsTree& tree, const Spool& spool, int fd) {
  MOAT_ASSIGN_OR_RETURN(Layout layout, plan_layout(tree));
  if (::ftruncate(fd, 0) != 0) return errno_error("truncating image");
  MOAT_TRY(ImageEmitter(layout, spool, fd).run());
  return ErofsStats{layout.inodes.size(), layout.total_blocks, layout.total_blocks * kBlockSize};
}

}  // namespace moat::image
