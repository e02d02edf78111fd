// Lexical handling of paths found in layer tars. Nothing here touches the
// host filesystem and symlinks are never resolved: a path is only ever a list
// of names below the image root.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace moat::image {

inline constexpr std::size_t kMaxPathLength = 4096;

// Splits a tar entry name into clean components, the way OCI unpackers read
// them: a leading "/" makes the name relative to the root (absolute names are
// re-rooted, not rejected), empty and "." components are dropped, ".." removes
// the previous component and is an error if it would leave the root. Each
// component must be a valid file name. An empty result names the root itself.
// The views point into `path`.
Result<std::vector<std::string_view>> split_entry_path(std::string_view path,
                                                       std::size_t max_length = kMaxPathLength);

// "a/b/c" from components (the root is "").
std::string join_path(const std::vector<std::string_view>& components, std::size_t count);

}  // namespace moat::image
