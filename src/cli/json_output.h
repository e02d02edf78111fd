// What several commands print the same way: `inspect`-style JSON
// arrays of one object per name given.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/exec_runner.h"
#include "moat/result.h"

namespace moat::cli {

// JSON for people to read: argv and paths are bytes, and what is not UTF-8
// is shown replaced (U+FFFD) instead of failing the dump.
inline std::string dump_lossy(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Prints a JSON array of to_json(fetch(key)) for every key that works and an
// error line for each that does not; returns 0, or 125 (kExitMoatError) if any failed.
template <class Fetch, class ToJson>
int print_inspected(const std::vector<std::string>& keys, Fetch fetch, ToJson to_json) {
  nlohmann::json arr = nlohmann::json::array();
  int code = 0;
  for (const auto& key : keys) {
    auto found = fetch(key);
    if (!found) {
      print_error(found.error().message);
      code = kExitMoatError;
      continue;
    }
    arr.push_back(to_json(*found));
  }
  if (!arr.empty()) std::printf("%s\n", dump_lossy(arr, 2).c_str());
  return code;
}

}  // namespace moat::cli
