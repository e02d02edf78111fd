// The guest's view of who owns a file served from a host directory, and
// with which mode: how the directory backend (dir_backend.h) keeps guest
// owners, modes (setuid/setgid/sticky included) and device numbers of host
// files that all belong to the server's user.
//
// Contracts:
// - With user xattrs on the host filesystem (`in_xattrs()`), the guest's
//   owner, mode and rdev of regular files and directories live in the xattr
//   user.moat.stat (stat_xattr.h: format and validation). A file without a
//   valid value shows its host stat. Symlinks cannot carry user xattrs and
//   always show the host's.
// - Without user xattrs nothing is recorded: record() is EPERM and the host
//   stat is what the guest sees.
// - Host permission bits never carry setuid/setgid/sticky, always let the
//   server's user read and write (and search directories), and, where the
//   guest mode is in the xattr, never make the host file group- or
//   other-writable.
// - A new entry is owned by its creator, with the group of a setgid parent
//   (and, for a directory, the setgid bit too), as on a local filesystem.
//
// Descriptors passed in are the node table's O_PATH descriptors unless said
// otherwise; xattr calls go through /proc/self/fd, which names exactly that
// inode. Thread-safe (no mutable state).
#pragma once

#include <linux/fuse.h>
#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string_view>

#include "fs/fs_backend.h"
#include "fs/stat_xattr.h"

namespace moat::fs {

class DirOwnership {
 public:
  // Whether the filesystem holding `root_fd` keeps user xattrs.
  static bool probe(int root_fd);

  explicit DirOwnership(bool xattrs) : xattrs_(xattrs) {}

  // Guest owners and modes are recorded in xattrs (the host keeps them).
  bool in_xattrs() const { return xattrs_; }

  // The recorded guest stat of the file (host stat `st`), if there is a
  // valid one.
  std::optional<GuestStat> recorded(int fd, const struct stat& st) const;
  // The guest stat the file shows now: recorded, or derived from the host.
  GuestStat effective(int fd, const struct stat& st) const;
  // Records `g` for the file; 0 or an errno (EPERM without xattrs).
  int record(int fd, const GuestStat& g) const;
  // The same for a descriptor open for I/O (a file just created).
  int record_open(int open_fd, const GuestStat& g) const;

  // The owner and mode a new entry of `mode` in the directory `parent_fd`
  // gets when `who` creates it.
  GuestStat for_new_entry(const FuseCaller& who, int parent_fd, std::uint32_t mode) const;

  // The host permission bits for a file (a directory if `dir`) whose guest
  // mode is `mode`.
  mode_t host_perm(std::uint32_t mode, bool dir) const;

  // The guest's d_type of the entry `name` in the open directory `dirfd`,
  // for plain READDIR: a regular host file may stand for a device, FIFO or
  // socket.
  int guest_dtype_at(int dirfd, std::string_view name, unsigned char host_type) const;

 private:
  bool xattrs_;
};

// The attributes the guest sees: the host's stat `st` with the guest's
// owner, mode and rdev from `g` where there is one.
void fill_guest_attr(const struct stat& st, const std::optional<GuestStat>& g, fuse_attr& a);

// The d_type of a file mode.
inline std::uint32_t dtype_of_mode(std::uint32_t mode) { return (mode & S_IFMT) >> 12; }

}  // namespace moat::fs
