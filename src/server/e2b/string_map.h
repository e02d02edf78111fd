// A JSON object of strings as a map (E2B's metadata and envVars, in
// requests and in the records kept on disk): null is empty; anything but an
// object of at most kMaxStringMapEntries strings is EINVAL naming `field`.
#pragma once

#include <cerrno>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "moat/result.h"

namespace moat::server::e2b {

inline constexpr std::size_t kMaxStringMapEntries = 1024;

inline Result<std::map<std::string, std::string>> string_map_of(const nlohmann::json& j, const std::string& field) {
  std::map<std::string, std::string> out;
  if (j.is_null()) return out;
  if (!j.is_object()) return make_error(field + ": expected an object of strings", EINVAL);
  if (j.size() > kMaxStringMapEntries) return make_error(field + ": more than 1024 entries", EINVAL);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) return make_error(field + "." + it.key() + ": expected a string", EINVAL);
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

}  // namespace moat::server::e2b
