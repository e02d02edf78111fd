// Base64 (RFC 4648 section 4: the standard alphabet, padded), for HTTP Basic
// credentials and the "auth" values of Docker's config.json. Header only:
// the TLS secret rewriter is in fuzz builds, which have no moat_util.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat {
namespace detail {

inline constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The 6-bit value of an alphabet character, -1 for anything else ('=' too).
inline int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace detail

// `data` encoded, padded with '=' to a multiple of four characters, no line
// breaks.
inline std::string base64_encode(std::string_view data) {
  auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])); };
  auto digit = [](std::uint32_t v) { return detail::kBase64Alphabet[v & 63]; };
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += digit(n >> 18);
    out += digit(n >> 12);
    out += digit(n >> 6);
    out += digit(n);
  }
  if (std::size_t rest = data.size() - i; rest > 0) {
    std::uint32_t n = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
    out += digit(n >> 18);
    out += digit(n >> 12);
    out += rest == 2 ? digit(n >> 6) : '=';
    out += '=';
  }
  return out;
}

// The bytes `text` encodes ("" for ""). Strict, since what callers decode
// comes from files and peers they do not control: a multiple of four
// characters of the standard alphabet, with '=' only as one or two final
// padding characters; no whitespace, line breaks or URL-safe alphabet. The
// unused low bits of a padded last group are ignored (RFC 4648 3.5 allows
// either), as OpenSSL's decoder and Docker's do. Errors are EINVAL.
inline Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return make_error("invalid base64 (length)", EINVAL);
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::uint32_t n = 0;
  for (std::size_t i = 0; i < text.size() - pad; ++i) {
    int v = detail::base64_value(text[i]);
    if (v < 0) return make_error("invalid base64", EINVAL);
    n = n << 6 | static_cast<std::uint32_t>(v);
    if (i % 4 == 3) {
      out += static_cast<char>(n >> 16 & 0xff);
      out += static_cast<char>(n >> 8 & 0xff);
      out += static_cast<char>(n & 0xff);
      n = 0;
    }
  }
  if (pad == 1) {  // three characters, 18 bits: two bytes
    out += static_cast<char>(n >> 10 & 0xff);
    out += static_cast<char>(n >> 2 & 0xff);
  } else if (pad == 2) {  // two characters, 12 bits: one byte
    out += static_cast<char>(n >> 4 & 0xff);
  }
  return out;
}

}  // namespace moat
