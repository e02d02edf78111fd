// Reading one object of a JSON form sent by a caller (the C ABI, the
// server): untrusted text, so every field's type and range is checked and a
// field not in the form is an error rather than silently ignored (a
// misspelt "memory_mb" must not boot a sandbox with the default).
//
// Errors are EINVAL naming the field by its path ("sandbox.volumes[2]").
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "moat/duration.h"
#include "moat/result.h"
#include "util/json_object.h"

namespace moat::json_fields {

using Json = nlohmann::json;

inline Error bad(const std::string& where, const std::string& why) { return make_error(where + ": " + why, EINVAL); }

// An error of a command-line parser a field was checked with, as this
// form's: EINVAL (a client's bad input, whatever the parser's code: a patch
// path that climbs out of "/" is EPERM there) and naming the field.
inline Error refused(const Error& e, const std::string& where) { return bad(where, e.message); }

// Parses `text` as one JSON object of at most `max_bytes` and kMaxJsonDepth.
inline Result<Json> parse_object(std::string_view text, const std::string& where, std::size_t max_bytes) {
  return parse_json_object(text, where, max_bytes);
}

// One object's fields, read by name: `at(name)` is the path of a field.
class Object {
 public:
  Object(const Json& j, std::string where) : j_(j), where_(std::move(where)) {}

  std::string at(std::string_view key) const { return where_ + "." + std::string(key); }
  bool has(const char* key) const { return j_.contains(key); }
  const Json& raw(const char* key) const { return j_.at(key); }

  Status only(std::initializer_list<const char*> known) const {
    if (!j_.is_object()) return bad(where_, "expected an object");
    for (const auto& [key, value] : j_.items()) {
      (void)value;
      bool found = false;
      for (const char* k : known) found = found || key == k;
      if (!found) return bad(at(key), "not a field of this form");
    }
    return ok_status();
  }

  Result<std::string> string(const char* key) const {
    const Json& v = j_.at(key);
    if (!v.is_string()) return bad(at(key), "expected a string");
    return v.get<std::string>();
  }
  Result<bool> boolean(const char* key) const {
    const Json& v = j_.at(key);
    if (!v.is_boolean()) return bad(at(key), "expected true or false");
    return v.get<bool>();
  }
  Result<std::uint64_t> whole(const char* key, std::uint64_t min, std::uint64_t max) const {
    const Json& v = j_.at(key);
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() < min || v.get<std::uint64_t>() > max)
      return bad(at(key), "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    return v.get<std::uint64_t>();
  }
  // Seconds as a number (fractions allowed, to the millisecond), 0 to `max`.
  Result<Duration> seconds(const char* key, std::uint64_t max_seconds) const {
    const Json& v = j_.at(key);
    if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > static_cast<double>(max_seconds))
      return bad(at(key), "expected seconds from 0 to " + std::to_string(max_seconds));
    return Duration(static_cast<std::int64_t>(v.get<double>() * 1000.0 + 0.5));
  }
  Result<std::vector<std::string>> strings(const char* key) const {
    const Json& v = j_.at(key);
    if (!v.is_array()) return bad(at(key), "expected an array of strings");
    std::vector<std::string> out;
    for (const auto& item : v) {
      if (!item.is_string()) return bad(at(key), "expected an array of strings");
      out.push_back(item.get<std::string>());
    }
    return out;
  }
  Result<std::map<std::string, std::string>> string_map(const char* key) const {
    const Json& v = j_.at(key);
    if (!v.is_object()) return bad(at(key), "expected an object of strings");
    std::map<std::string, std::string> out;
    for (const auto& [k, item] : v.items()) {
      if (!item.is_string()) return bad(at(key) + "." + k, "expected a string");
      out[k] = item.get<std::string>();
    }
    return out;
  }

 private:
  const Json& j_;
  std::string where_;
};

}  // namespace moat::json_fields
