#include "sandbox/log_follower.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace moat::sandbox {

LogFollower::LogFollower(std::string path, Sink sink) : path_(std::move(path)), sink_(std::move(sink)) {
  fd_.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (fd_ && ::fstat(fd_.get(), &st) == 0) inode_ = st.st_ino;
  if (fd_) ::lseek(fd_.get(), 0, SEEK_END);
}

void LogFollower::copy_rest() {
  // A new boot empties the file in place: start again from its beginning.
  struct stat st {};
  if (fd_ && ::fstat(fd_.get(), &st) == 0 && st.st_size < ::lseek(fd_.get(), 0, SEEK_CUR))
    ::lseek(fd_.get(), 0, SEEK_SET);
  char buf[65536];
  while (fd_) {
    ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sink_(std::string_view(buf, static_cast<std::size_t>(n)));
  }
}

// True if `path` now names another file (a rotation, or a new boot's log).
bool LogFollower::reopen_if_rotated() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0 || (fd_ && st.st_ino == inode_)) return false;
  fd_.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  inode_ = st.st_ino;
  return true;
}

void LogFollower::drain() {
  copy_rest();
  if (reopen_if_rotated()) copy_rest();
}

}  // namespace moat::sandbox
