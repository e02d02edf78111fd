// Advisory whole-file locks (flock) as values: the lock is held while the
// object lives. Used for a sandbox's operation lock (one start/stop/rm at a
// time) and to ask whether a shim still holds its lifetime lock.
#pragma once

#include <optional>
#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::sandbox {

class FileLock {
 public:
  // Blocks until the exclusive lock on `path` (created if missing) is ours.
  static Result<FileLock> acquire(const std::string& path);
  // Takes the lock only if nobody holds it; empty if somebody does.
  static Result<std::optional<FileLock>> try_acquire(const std::string& path);
  // Gives the lock up before the object goes away.
  void release() { fd_.reset(); }

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// True when some process holds `path` locked. A missing file is unlocked.
Result<bool> is_locked(const std::string& path);

}  // namespace moat::sandbox
