// A read-only root filesystem image from a host directory: the tree is read
// (never followed through symlinks), written as EROFS by moat's own writer,
// and cached by the tree's content digest.
#pragma once

#include <string>

#include "image/erofs/fs_tree.h"
#include "image/erofs/spool.h"
#include "util/result.h"

namespace moat::image {

// Reads `dir` into `tree`, file contents into `spool`. Ownership, modes,
// times, xattrs, devices and hardlinks are kept as they are on the host.
Status read_directory_tree(const std::string& dir, FsTree& tree, Spool& spool);

// Path of the EROFS image of `dir` under cache_dir/rootfs/, built if missing.
Result<std::string> erofs_from_directory(const std::string& dir, const std::string& cache_dir);

}  // namespace moat::image
