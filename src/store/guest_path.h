// Lexical handling of absolute paths inside a guest's root filesystem. Nothing
// here touches the host and symlinks are never resolved: a guest path is only
// a list of names below the guest's "/".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace moat::store {

inline constexpr std::size_t kMaxGuestPathLength = 4096;
inline constexpr std::size_t kMaxGuestNameLength = 255;

// Splits an absolute guest path into clean components: empty and "."
// components are dropped, ".." removes the previous component and is an
// error if it would leave the root. The path must start with "/", hold no
// NUL, be at most 4096 bytes, and every name at most 255 bytes. An empty
// result names the root itself.
Result<std::vector<std::string>> split_guest_path(std::string_view path);

// "/a/b" from the first `count` components ("/" for none).
std::string join_guest_path(const std::vector<std::string>& components, std::size_t count);
std::string join_guest_path(const std::vector<std::string>& components);

// `parent` + "/" + `name`, without doubling the root's slash.
std::string guest_child(const std::string& parent, const std::string& name);

}  // namespace moat::store
