// The guest-visible ownership of a file served from a host directory,
// stored in the xattr `user.moat.stat` of the host file.
//
// The directory backend runs as one host user and cannot (and must not)
// give host files the owners, setuid bits or device numbers a guest asks
// for; it records them here instead and reports them in GETATTR.
//
// Format (version 1), exactly 20 bytes, little-endian:
//   u8 version (1), u8[3] zero,
//   u32 uid, u32 gid, u32 mode (file type + 07777), u32 rdev (new_encode_dev)
// A value is accepted only if every field is valid and the type agrees with
// the host file (directory for a directory; regular, device, FIFO or socket
// for a regular host file); anything else is ignored and the host's own stat
// is reported. A host that writes a value can still claim any owner or mode:
// whoever can write the host directory controls what the guest sees.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::fs {

inline constexpr const char* kStatXattrName = "user.moat.stat";
// Every xattr whose name starts with this is the server's own: hidden from
// the guest (and guest trusted./security. names are kept under
// kMappedXattrPrefix, inside it).
inline constexpr std::string_view kPrivateXattrPrefix = "user.moat.";
inline constexpr std::string_view kMappedXattrPrefix = "user.moat.x.";
inline constexpr std::size_t kStatXattrSize = 20;

struct GuestStat {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint32_t mode = 0;  // S_IFMT bits and 07777
  std::uint32_t rdev = 0;  // the kernel's new_encode_dev() form, as in fuse_attr
};

std::string encode_guest_stat(const GuestStat& st);

// Validates `value` against the host file's mode; nullopt if it is not a
// well-formed version-1 value for that kind of file.
std::optional<GuestStat> decode_guest_stat(std::string_view value, mode_t host_mode);

// new_encode_dev / new_decode_dev as the kernel uses them in fuse_attr.rdev.
std::uint32_t encode_rdev(std::uint32_t major, std::uint32_t minor);

}  // namespace moat::fs
