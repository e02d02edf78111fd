#include "image/oci/digest.h"

#include <openssl/evp.h>

#include "util/hex.h"

namespace moat::image {
namespace {

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

}  // namespace

Status validate_digest(std::string_view digest) {
  auto colon = digest.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return make_error("invalid digest: expected <algorithm>:<hex>", EINVAL);
  }
  if (digest.substr(0, colon + 1) != kSha256Prefix) {
    return make_error("unsupported digest algorithm '" + std::string(digest.substr(0, colon)) +
                          "' (only sha256 is supported)",
                      EINVAL);
  }
  std::string_view hex = digest.substr(colon + 1);
  if (hex.size() != kSha256HexLength) {
    return make_error("invalid sha256 digest: expected 64 hex digits, got " +
                          std::to_string(hex.size()),
                      EINVAL);
  }
  for (char c : hex) {
    if (!is_lower_hex(c)) {
      return make_error("invalid sha256 digest: only lowercase hex digits are allowed", EINVAL);
    }
  }
  return ok_status();
}

std::string sha256_digest(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return sha256_digest_of(md, len);
}

std::string sha256_digest_of(const unsigned char* md, std::size_t len) {
  return std::string(kSha256Prefix) + lower_hex(md, len);
}

}  // namespace moat::image
