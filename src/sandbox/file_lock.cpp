#include "sandbox/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

namespace moat::sandbox {
namespace {

Result<UniqueFd> open_lock_file(const std::string& path, bool create) {
  // O_CLOEXEC: a shim started while we hold a lock must not inherit it.
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600));
  if (!fd) return errno_error("open " + path);
  return fd;
}

}  // namespace

Result<FileLock> FileLock::acquire(const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(auto fd, open_lock_file(path, true));
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return errno_error("lock " + path);
  }
  return FileLock(std::move(fd));
}

Result<std::optional<FileLock>> FileLock::try_acquire(const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(auto fd, open_lock_file(path, true));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return std::optional<FileLock>{};
    return errno_error("lock " + path);
  }
  return std::optional<FileLock>(FileLock(std::move(fd)));
}

Result<bool> is_locked(const std::string& path) {
  auto fd = open_lock_file(path, false);
  if (!fd) {
    if (fd.error().code == ENOENT) return false;
    return fd.error();
  }
  if (::flock(fd->get(), LOCK_SH | LOCK_NB) == 0) return false;
  if (errno == EWOULDBLOCK) return true;
  return errno_error("lock " + path);
}

}  // namespace moat::sandbox
