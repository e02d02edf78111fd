// Parsing one JSON object from an untrusted caller with its size and depth
// bounded. nlohmann's reader is iterative, but dump() and the comparison
// operators recurse once per level: a few hundred KiB of "[" read without a
// bound would overflow the stack of whoever writes the value back out.
// Header-only, so front ends (the server) and the JSON readers share it.
#pragma once

#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "moat/result.h"

namespace moat {

// Far deeper than any form moat reads (sandbox.network.tls.ports is four levels).
constexpr int kMaxJsonDepth = 64;

// `text` as one JSON object of at most `max_bytes` and kMaxJsonDepth levels;
// errors are EINVAL and start with `where`.
inline Result<nlohmann::json> parse_json_object(std::string_view text, const std::string& where,
                                                std::size_t max_bytes) {
  if (text.size() > max_bytes)
    return make_error(where + ": the JSON is over " + std::to_string(max_bytes >> 10) + " KiB", EINVAL);
  bool too_deep = false;
  // Values past the limit are dropped as they are read, so a refused text
  // costs no more memory than an accepted one.
  nlohmann::json j = nlohmann::json::parse(
      text,
      [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
        if (depth > kMaxJsonDepth) too_deep = true;
        return !too_deep;
      },
      false);
  if (too_deep) return make_error(where + ": nested deeper than " + std::to_string(kMaxJsonDepth) + " levels", EINVAL);
  if (j.is_discarded()) return make_error(where + ": not valid JSON", EINVAL);
  if (!j.is_object()) return make_error(where + ": expected a JSON object", EINVAL);
  return j;
}

}  // namespace moat
