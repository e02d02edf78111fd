// `moat logs -f`: copies what a capped log (shim/capped_log.h) gains to
// stdout. The shim may rotate the file at any time (console.log becomes
// console.log.1); the follower finishes the file it has open, which is the
// rotated one then, and continues with the new one from its start.
#pragma once

#include <sys/types.h>

#include <string>

#include "util/unique_fd.h"

namespace moat::cli {

class LogFollower {
 public:
  // Starts at the current end of `path` (what is there was printed already).
  explicit LogFollower(std::string path);
  // Prints what was added since the last call.
  void drain();

 private:
  void copy_rest();
  bool reopen_if_rotated();

  std::string path_;
  UniqueFd fd_;
  ino_t inode_ = 0;
};

}  // namespace moat::cli
