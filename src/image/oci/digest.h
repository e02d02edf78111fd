// Content digests as OCI writes them: "<algorithm>:<hex>".
//
// Only sha256 is accepted. The OCI grammar allows other algorithms, but every
// registry and image in practice uses sha256, and accepting an algorithm we
// cannot verify would let a blob in unchecked.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat::image {

inline constexpr std::string_view kSha256Prefix = "sha256:";
inline constexpr std::size_t kSha256HexLength = 64;

// Checks "sha256:" followed by exactly 64 lowercase hex digits, and says what
// is wrong otherwise.
Status validate_digest(std::string_view digest);

inline bool is_valid_digest(std::string_view digest) { return validate_digest(digest).ok(); }

// "sha256:<hex>" of `data`.
std::string sha256_digest(std::string_view data);

// "sha256:" followed by the lowercase hex of a finished SHA-256.
std::string sha256_digest_of(const unsigned char* md, std::size_t len);

}  // namespace moat::image
