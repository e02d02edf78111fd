#include "fs/dir_ownership.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cerrno>
#include <string>

namespace moat::fs {
namespace {

int last_errno() { return errno ? errno : EIO; }

std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

}  // namespace

bool DirOwnership::probe(int root_fd) {
  errno = 0;
  ssize_t probe = ::getxattr(proc_path(root_fd).c_str(), kStatXattrName, nullptr, 0);
  return probe >= 0 || (errno != ENOTSUP && errno != EOPNOTSUPP);
}

// Only regular files and directories carry a value (user xattrs are not
// allowed on symlinks).
std::optional<GuestStat> DirOwnership::recorded(int fd, const struct stat& st) const {
  if (!xattrs_ || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) return std::nullopt;
  char buf[kStatXattrSize + 1];
  ssize_t n = ::getxattr(proc_path(fd).c_str(), kStatXattrName, buf, sizeof buf);
  if (n < 0) return std::nullopt;  // absent, or too long to be valid (ERANGE)
  return decode_guest_stat(std::string_view(buf, static_cast<std::size_t>(n)), st.st_mode);
}

GuestStat DirOwnership::effective(int fd, const struct stat& st) const {
  if (auto g = recorded(fd, st)) return *g;
  return GuestStat{st.st_uid, st.st_gid, st.st_mode & (S_IFMT | 07777), 0};
}

int DirOwnership::record(int fd, const GuestStat& g) const {
  if (!xattrs_) return EPERM;
  std::string v = encode_guest_stat(g);
  if (::setxattr(proc_path(fd).c_str(), kStatXattrName, v.data(), v.size(), 0) != 0) return last_errno();
  return 0;
}

int DirOwnership::record_open(int open_fd, const GuestStat& g) const {
  if (!xattrs_) return EPERM;
  std::string v = encode_guest_stat(g);
  if (::fsetxattr(open_fd, kStatXattrName, v.data(), v.size(), 0) != 0) return last_errno();
  return 0;
}

GuestStat DirOwnership::for_new_entry(const FuseCaller& who, int parent_fd, std::uint32_t mode) const {
  GuestStat g{who.uid, who.gid, mode, 0};
  struct stat st {};
  if (::fstatat(parent_fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0) {
    GuestStat p = effective(parent_fd, st);
    if (p.mode & S_ISGID) {
      g.gid = p.gid;
      if (S_ISDIR(mode)) g.mode |= S_ISGID;
    }
  }
  return g;
}

// The guest's rwx bits, never setuid/setgid/sticky (a guest must not plant
// a setuid file on the host). Where the guest's mode lives in the xattr, a
// guest's `mkdir -m 1777` or `chmod 666` must not open the host file to the
// host's other users either.
mode_t DirOwnership::host_perm(std::uint32_t mode, bool dir) const {
  std::uint32_t bits = mode & (xattrs_ ? 0755 : 0777);
  return static_cast<mode_t>(bits | (dir ? 0700 : 0600));
}

int DirOwnership::guest_dtype_at(int dirfd, std::string_view name, unsigned char host_type) const {
  if (host_type != DT_REG || !xattrs_) return host_type;
  std::string path = proc_path(dirfd) + "/" + std::string(name);
  char buf[kStatXattrSize + 1];
  // lgetxattr: the last component is not followed even if it was swapped
  // for a symlink since getdents; the directory part is our own descriptor.
  ssize_t n = ::lgetxattr(path.c_str(), kStatXattrName, buf, sizeof buf);
  if (n < 0) return host_type;
  auto g = decode_guest_stat(std::string_view(buf, static_cast<std::size_t>(n)), S_IFREG);
  return g ? static_cast<int>(dtype_of_mode(g->mode)) : host_type;
}

void fill_guest_attr(const struct stat& st, const std::optional<GuestStat>& g, fuse_attr& a) {
  a = {};
  a.ino = st.st_ino;
  a.size = static_cast<std::uint64_t>(st.st_size);
  a.blocks = static_cast<std::uint64_t>(st.st_blocks);
  a.atime = static_cast<std::uint64_t>(st.st_atim.tv_sec);
  a.mtime = static_cast<std::uint64_t>(st.st_mtim.tv_sec);
  a.ctime = static_cast<std::uint64_t>(st.st_ctim.tv_sec);
  a.atimensec = static_cast<std::uint32_t>(st.st_atim.tv_nsec);
  a.mtimensec = static_cast<std::uint32_t>(st.st_mtim.tv_nsec);
  a.ctimensec = static_cast<std::uint32_t>(st.st_ctim.tv_nsec);
  a.mode = st.st_mode;
  a.nlink = static_cast<std::uint32_t>(st.st_nlink);
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = encode_rdev(major(st.st_rdev), minor(st.st_rdev));
  a.blksize = static_cast<std::uint32_t>(st.st_blksize);
  if (g) {
    a.mode = g->mode;
    a.uid = g->uid;
    a.gid = g->gid;
    a.rdev = g->rdev;
  }
}

}  // namespace moat::fs
