// StoreLock: $MOAT_HOME/images.lock, an flock that keeps deletions away from
// writers.
//
// Pulls and loads hold it shared for their whole run: from the first blob
// they publish until their rows are in the database, their blobs and roots
// are referenced by nothing and would look like garbage. `rm` and `prune`
// hold it exclusively, so they only ever see a store in which every writer
// has either finished (rows recorded) or not started. Readers that must not
// see blobs disappear half-way (save, fsck) hold it shared too. The lock is
// released when the descriptor closes, so a killed process never leaves it
// held.
#pragma once

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::image {

class StoreLock {
 public:
  enum class Mode { kShared, kExclusive };

  static std::string path_in(const std::string& home) { return home + "/images.lock"; }

  // Blocks until the lock is granted.
  static Result<StoreLock> acquire(const std::string& home, Mode mode) {
    std::string path = path_in(home);
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return errno_error("open " + path);
    int op = mode == Mode::kShared ? LOCK_SH : LOCK_EX;
    while (::flock(fd.get(), op) != 0) {
      if (errno != EINTR) return errno_error("lock " + path);
    }
    StoreLock l;
    l.fd_ = std::move(fd);
    return l;
  }

  StoreLock() = default;
  StoreLock(StoreLock&&) = default;
  StoreLock& operator=(StoreLock&&) = default;

  bool held() const { return static_cast<bool>(fd_); }
  void release() { fd_.reset(); }

 private:
  UniqueFd fd_;
};

}  // namespace moat::image
