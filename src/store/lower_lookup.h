// What the read-only lower layer of a sandbox root holds at a guest path.
// Pre-boot patches ask it so that directories they create in the upper layer
// look exactly like the lower ones they merge with, and so that removing a
// lower file writes an overlayfs whiteout.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "util/result.h"

namespace moat::store {

struct LowerEntry {
  std::uint32_t mode = 0;  // including the S_IFMT type bits (Linux values)
  std::uint32_t uid = 0, gid = 0;
  std::int64_t mtime = 0;  // seconds
};

// Returns the entry at an absolute, clean guest path ("/etc/passwd"; "/" is
// the root), std::nullopt when there is none, or an error when the lower
// cannot be read. Must not resolve symlinks: an entry below a symlink or a
// non-directory does not exist.
using LowerLookup = std::function<Result<std::optional<LowerEntry>>(const std::string& guest_path)>;

// A lower that has nothing (an empty image): every lookup returns nullopt.
LowerLookup empty_lower_lookup();

// A lower backed by a host directory (`--rootfs-dir` roots). Each lookup
// walks the path one name at a time below an fd of `root` opened now, with
// O_NOFOLLOW, so no symlink inside the tree can lead it outside `root`.
Result<LowerLookup> lower_lookup_from_directory(const std::string& root);

}  // namespace moat::store
