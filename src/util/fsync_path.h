// Flushes a file's contents, or a directory's entries (what makes a rename
// into it durable), to disk.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat {

inline Status fsync_path(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) return errno_error("sync " + path);
  return ok_status();
}

}  // namespace moat
