#include "fs/stat_xattr.h"

#include <cstring>

namespace moat::fs {
namespace {

constexpr std::uint8_t kVersion = 1;

void put32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint32_t get32(std::string_view in, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(in[at + i])) << (8 * i);
  return v;
}

// Which guest types a host file of `host_mode`'s type may stand for.
bool type_allowed(std::uint32_t guest_type, mode_t host_mode) {
  if (S_ISDIR(host_mode)) return guest_type == S_IFDIR;
  if (S_ISREG(host_mode)) {
    return guest_type == S_IFREG || guest_type == S_IFCHR || guest_type == S_IFBLK ||
           guest_type == S_IFIFO || guest_type == S_IFSOCK;
  }
  return false;  // symlinks and host special files carry no value
}

}  // namespace

std::string encode_guest_stat(const GuestStat& st) {
  std::string out;
  out.reserve(kStatXattrSize);
  out.push_back(static_cast<char>(kVersion));
  out.append(3, '\0');
  put32(out, st.uid);
  put32(out, st.gid);
  put32(out, st.mode);
  put32(out, st.rdev);
  return out;
}

std::optional<GuestStat> decode_guest_stat(std::string_view value, mode_t host_mode) {
  if (value.size() != kStatXattrSize) return std::nullopt;
  if (static_cast<std::uint8_t>(value[0]) != kVersion || value[1] || value[2] || value[3]) {
    return std::nullopt;
  }
  GuestStat st{get32(value, 4), get32(value, 8), get32(value, 12), get32(value, 16)};
  if (st.mode & ~static_cast<std::uint32_t>(S_IFMT | 07777)) return std::nullopt;
  if (!type_allowed(st.mode & S_IFMT, host_mode)) return std::nullopt;
  bool device = S_ISCHR(st.mode) || S_ISBLK(st.mode);
  if (!device && st.rdev != 0) return std::nullopt;
  // (uid_t)-1 and (gid_t)-1 mean "no change" to chown and are never owners.
  if (st.uid == UINT32_MAX || st.gid == UINT32_MAX) return std::nullopt;
  return st;
}

std::uint32_t encode_rdev(std::uint32_t major, std::uint32_t minor) {
  return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xffu) << 12);
}

}  // namespace moat::fs
