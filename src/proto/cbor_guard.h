// A structural pre-check of untrusted CBOR before it reaches a general parser.
//
// nlohmann::json parses nested arrays and maps recursively, so a hostile
// 1 MiB body of nested arrays would overflow the stack. This check walks the
// item structure iteratively and rejects anything moat never sends: nesting
// deeper than a limit, indefinite lengths, tags, lengths past the end of the
// buffer, and trailing bytes.
#pragma once

#include <cstddef>
#include <string_view>

#include "util/result.h"

namespace moat::proto {

inline constexpr std::size_t kMaxCborDepth = 16;

Status check_cbor_structure(std::string_view bytes, std::size_t max_depth = kMaxCborDepth);

}  // namespace moat::proto
