// A pre-check of untrusted JSON text (registry manifests, archive indexes)
// before it reaches nlohmann::json, which parses recursively: a body of
// nested brackets would otherwise exhaust the stack.
#pragma once

#include <cstddef>
#include <string_view>

#include "util/result.h"

namespace moat::image {

inline constexpr std::size_t kMaxJsonDepth = 32;

// Rejects text whose arrays and objects nest deeper than kMaxJsonDepth
// (EINVAL, "JSON nested too deeply"). Brackets inside strings do not count;
// anything else is left for the parser to judge.
Status check_json_nesting(std::string_view text);

}  // namespace moat::image
