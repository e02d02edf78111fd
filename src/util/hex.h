// Lowercase hex of bytes (digests, ids), for every component: header only.
#pragma once

#include <cstddef>
#include <string>

namespace moat {

inline std::string lower_hex(const unsigned char* bytes, std::size_t len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (std::size_t i = 0; i < len; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xf]);
  }
  return out;
}

}  // namespace moat
