// Decoding of FUSE requests: one message as the kernel (/dev/fuse) or a
// virtio-fs driver sends it, checked before anything looks inside.
//
// The sender is untrusted (a guest, for virtio-fs). decode_request checks the
// header's length against the bytes actually received, and the body against
// the size the opcode needs; names must be NUL-terminated inside the message
// and 1..255 bytes long. The decoded request points into the caller's buffer,
// which must outlive it. Structures are copied out with memcpy, so the buffer
// needs no particular alignment.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "util/result.h"

namespace moat::fs {

// The protocol version this server speaks (7.31 is the oldest kernel it
// accepts: Linux 5.4; the structures below have their full size from then on).
inline constexpr std::uint32_t kFuseMajor = 7;
inline constexpr std::uint32_t kFuseMinor = 38;
inline constexpr std::uint32_t kFuseMinMinor = 31;

// Largest message the server accepts or sizes its buffers for: a WRITE of
// max_write bytes plus headers.
inline constexpr std::uint32_t kFuseMaxWrite = 1u << 20;
inline constexpr std::size_t kFuseRequestBufferSize = kFuseMaxWrite + 4096;

struct FuseBatchForget {
  std::vector<fuse_forget_one> items;
};

struct FuseGetxattr {
  fuse_getxattr_in in;
  std::string_view name;  // GETXATTR only
};

// SETXATTR without FUSE_SETXATTR_EXT (never negotiated): the 8-byte form.
struct FuseSetxattr {
  std::uint32_t size = 0;
  std::uint32_t flags = 0;
};

// Longest symlink target accepted (PATH_MAX without its NUL).
inline constexpr std::size_t kFuseMaxSymlinkTarget = 4095;
// Largest xattr value (XATTR_SIZE_MAX).
inline constexpr std::uint32_t kFuseMaxXattrValue = 65536;

// The opcode-specific part, for the opcodes the dispatcher interprets.
// RENAME is decoded as a fuse_rename2_in with flags 0.
using FuseArgs = std::variant<std::monostate, fuse_init_in, fuse_forget_in, FuseBatchForget,
                              fuse_getattr_in, fuse_open_in, fuse_read_in, fuse_release_in,
                              FuseGetxattr, fuse_access_in, fuse_lseek_in, fuse_interrupt_in,
                              fuse_flush_in, fuse_fsync_in, fuse_setattr_in, fuse_write_in,
                              fuse_create_in, fuse_mknod_in, fuse_mkdir_in, fuse_link_in,
                              fuse_rename2_in, FuseSetxattr, fuse_fallocate_in,
                              fuse_copy_file_range_in>;

struct FuseRequest {
  fuse_in_header header{};
  // A directory entry name (LOOKUP, CREATE, MKNOD, MKDIR, SYMLINK, LINK,
  // UNLINK, RMDIR; the old name of RENAME) or an xattr name (SETXATTR,
  // REMOVEXATTR). Entry names are 1..255 bytes, without '/', never "." or "..".
  std::string_view name;
  // RENAME's new name (same rules), or SYMLINK's target (1..4095 bytes).
  std::string_view name2;
  // WRITE's data or SETXATTR's value, exactly as long as the request says.
  std::span<const std::uint8_t> data;
  FuseArgs args;
  std::span<const std::uint8_t> body;  // everything after the header

  std::uint32_t opcode() const { return header.opcode; }
  std::uint64_t unique() const { return header.unique; }
  std::uint64_t nodeid() const { return header.nodeid; }
};

// Decodes one message. Errors carry EINVAL (malformed) or ENOSYS (an opcode
// this server does not know; the header is still valid then and the caller
// can reply to header.unique).
Result<FuseRequest> decode_request(std::span<const std::uint8_t> bytes);

// Reads just the header, for replying to a request whose body is malformed.
// Fails if not even a header is there or the length field disagrees.
Result<fuse_in_header> decode_header(std::span<const std::uint8_t> bytes);

const char* fuse_opcode_name(std::uint32_t opcode);

}  // namespace moat::fs
