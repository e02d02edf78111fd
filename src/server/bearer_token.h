// The token a TCP client must present (`Authorization: Bearer TOKEN`). The
// unix socket needs none: its mode (0600) is its access control.
#pragma once

#include <string>
#include <string_view>

#include "moat/result.h"

namespace moat::server {

// Reads the token from `path`, or makes one (32 random bytes, hex) in a new
// file of mode 0600 when there is none. A file that others may read or
// write is refused, as is a token shorter than 16 characters.
Result<std::string> load_or_create_token(const std::string& path);

// `bytes` bytes from the kernel's random source (getrandom), as lower hex:
// the server's token and the E2B front end's per-sandbox access tokens.
Result<std::string> random_hex_token(std::size_t bytes);

// Compares in time that does not depend on where the texts differ (both
// are hashed first, so not on their lengths either).
bool token_matches(std::string_view given, std::string_view expected);

// The token of an `Authorization` header value ("Bearer X", scheme in any
// case); empty if it is not a bearer credential.
std::string bearer_of(std::string_view authorization);

}  // namespace moat::server
