// Zero-block detection shared by the writers that turn zero blocks into holes.
#pragma once

#include <cstddef>
#include <cstring>

namespace moat::image {

inline constexpr std::size_t kZeroCheckBlock = 4096;

// n <= kZeroCheckBlock; memcmp against a zero block is vectorised.
inline bool all_zero(const char* p, std::size_t n) {
  static const char kZeros[kZeroCheckBlock] = {};
  return std::memcmp(p, kZeros, n) == 0;
}

}  // namespace moat::image
