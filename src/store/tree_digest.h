// A content digest of a directory tree: every entry's relative path, type,
// mode, owner, size, mtime, symlink target, device number and file content.
// Two trees with the same digest produce the same root filesystem.
#pragma once

#include <string>
#include <vector>

#include "util/result.h"

namespace moat::store {

// The names in an open directory (not "." or ".."), sorted, so walks are
// deterministic. `path` is for error messages.
Result<std::vector<std::string>> sorted_entries(int dirfd, const std::string& path);

// Hex sha256. Never follows symlinks; fails on unreadable files.
Result<std::string> tree_digest(const std::string& root);

// Sum of file sizes rounded up to 4 KiB blocks, and the entry count.
struct TreeSize {
  unsigned long long bytes = 0;
  unsigned long long entries = 0;
};
Result<TreeSize> tree_size(const std::string& root);

}  // namespace moat::store
