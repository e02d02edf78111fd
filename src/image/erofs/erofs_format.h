// EROFS on-disk format: the subset an uncompressed writer needs.
//
// Everything is little-endian. Structures are serialised field by field with
// the put_le helpers rather than through packed structs, so the layout is
// explicit here and independent of the compiler.
//
//   byte 0      1024            1152                          xattr area   data
//   [ unused ][ superblock 128 ][ inodes (32-byte slots) ... ][ shared ][ blocks ... ]
//
// With meta_blkaddr = 0 an inode's nid is its byte offset / 32, so the first
// inode (the root) is nid 36.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moat::image::erofs {

inline constexpr std::uint32_t kMagic = 0xE0F5E1E2;
inline constexpr unsigned kBlockSizeBits = 12;
inline constexpr std::uint64_t kBlockSize = 1u << kBlockSizeBits;
inline constexpr std::uint64_t kSuperblockOffset = 1024;
inline constexpr std::uint64_t kSuperblockSize = 128;
inline constexpr std::uint64_t kInodeSlotSize = 32;
inline constexpr std::uint64_t kFirstInodeOffset = kSuperblockOffset + kSuperblockSize;  // 1152

inline constexpr std::uint32_t kFeatureCompatMtime = 0x2;
inline constexpr std::uint32_t kNullAddr = 0xFFFFFFFF;

// Superblock field offsets (relative to kSuperblockOffset).
namespace sb {
inline constexpr std::size_t kMagic = 0;
inline constexpr std::size_t kFeatureCompat = 8;
inline constexpr std::size_t kBlkSzBits = 12;
inline constexpr std::size_t kRootNid = 14;  // u16
inline constexpr std::size_t kInos = 16;     // u64
inline constexpr std::size_t kBuildTime = 24;      // u64 (also "epoch")
inline constexpr std::size_t kBuildTimeNsec = 32;  // u32
inline constexpr std::size_t kBlocks = 36;         // u32
inline constexpr std::size_t kMetaBlkAddr = 40;
inline constexpr std::size_t kXattrBlkAddr = 44;
}  // namespace sb

// Inode layouts.
inline constexpr std::size_t kCompactInodeSize = 32;
inline constexpr std::size_t kExtendedInodeSize = 64;
inline constexpr std::uint16_t kInodeLayoutExtended = 1;  // bit 0 of i_format
inline constexpr std::uint16_t kDataLayoutFlatPlain = 0;  // bits 1..3 of i_format
inline constexpr std::uint16_t kDataLayoutFlatInline = 2;

inline constexpr std::uint16_t inode_format(bool extended, std::uint16_t data_layout) {
  return static_cast<std::uint16_t>((extended ? kInodeLayoutExtended : 0) | (data_layout << 1));
}

// Directory entries: 12-byte records followed by the names of the block.
inline constexpr std::size_t kDirentSize = 12;
enum FileTypeCode : std::uint8_t {
  kFtRegular = 1,
  kFtDirectory = 2,
  kFtCharDevice = 3,
  kFtBlockDevice = 4,
  kFtFifo = 5,
  kFtSocket = 6,
  kFtSymlink = 7,
};

// Xattrs.
inline constexpr std::size_t kXattrIbodyHeaderSize = 12;  // u32 filter, u8 shared count, 7 pad
inline constexpr std::size_t kXattrEntryHeaderSize = 4;   // u8 name len, u8 index, u16 value size
inline constexpr std::size_t kMaxSharedPerInode = 255;    // h_shared_count is a u8
enum XattrIndex : std::uint8_t {
  kXattrIndexUser = 1,
  kXattrIndexPosixAclAccess = 2,
  kXattrIndexPosixAclDefault = 3,
  kXattrIndexTrusted = 4,
  kXattrIndexSecurity = 6,
};

// The kernel's new_encode_dev(): 12-bit major, 20-bit minor.
inline constexpr std::uint32_t encode_dev(std::uint32_t major, std::uint32_t minor) {
  return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
}

inline void put_le16(unsigned char* p, std::uint16_t v) {
  p[0] = static_cast<unsigned char>(v);
  p[1] = static_cast<unsigned char>(v >> 8);
}
inline void put_le32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
inline void put_le64(unsigned char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

inline constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t to) {
  return (v + to - 1) / to * to;
}

}  // namespace moat::image::erofs
