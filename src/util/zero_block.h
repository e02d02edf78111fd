// Zero-block detection for the writers that turn zero blocks into holes
// (the EROFS writer, the ext4 editor, the shim's copy of guest RAM).
#pragma once

#include <cstddef>
#include <cstring>

namespace moat {

inline constexpr std::size_t kZeroCheckBlock = 4096;

// Whether all n bytes at p are zero: memcmp against a zero block, which is
// vectorised, one block at a time.
inline bool all_zero(const char* p, std::size_t n) {
  static const char kZeros[kZeroCheckBlock] = {};
  while (n > 0) {
    std::size_t len = n < kZeroCheckBlock ? n : kZeroCheckBlock;
    if (std::memcmp(p, kZeros, len) != 0) return false;
    p += len;
    n -= len;
  }
  return true;
}

}  // namespace moat
