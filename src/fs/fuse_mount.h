// Mounting and unmounting a FUSE filesystem served by this process.
//
// As root: open /dev/fuse and mount(2) it directly (allow_other and
// default_permissions, so every user sees the image with its own
// permissions enforced by the kernel). Otherwise: fusermount3 (package
// fuse3) mounts and passes the /dev/fuse descriptor back over a socket.
#pragma once

#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::fs {

struct FuseMountOptions {
  std::string source = "moat";  // shown in /proc/mounts
  std::string subtype = "moat";  // the type is "fuse.<subtype>"
  bool read_only = true;
};

// Mounts at `dir` and returns the session's /dev/fuse descriptor. The mount
// answers nothing until a server reads the descriptor.
Result<UniqueFd> fuse_mount(const std::string& dir, const FuseMountOptions& options);

// Unmounts `dir` (umount2 as root, fusermount3 -u otherwise).
Status fuse_unmount(const std::string& dir, bool lazy = false);

}  // namespace moat::fs
