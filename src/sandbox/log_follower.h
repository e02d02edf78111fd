// Following a capped log (shim_contract/capped_log.h): hands what it gains
// to a sink. The shim may rotate the file at any time (console.log becomes
// console.log.1); the follower finishes the file it has open, which is the
// rotated one then, and continues with the new one from its start.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>

#include "util/unique_fd.h"

namespace moat::sandbox {

class LogFollower {
 public:
  using Sink = std::function<void(std::string_view)>;
  // Starts at the current end of `path` (what is there was read already).
  LogFollower(std::string path, Sink sink);
  // Hands the sink what was added since the last call.
  void drain();

 private:
  void copy_rest();
  bool reopen_if_rotated();

  std::string path_;
  Sink sink_;
  UniqueFd fd_;
  ino_t inode_ = 0;
};

}  // namespace moat::sandbox
