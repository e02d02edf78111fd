// Bytes in a world of JSON text.
//
// POSIX argv, environment, paths and file names are bytes, not UTF-8. On the
// wire they travel as CBOR byte strings. nlohmann::json stores any bytes in a
// string but throws (type_error.316) when dumping one that is not UTF-8, so
// every JSON file, log line or printout of such text goes through here: a
// reversible form where the bytes must come back (records), a lossy one
// where people read them (logs, inspect output).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "moat/text.h"

namespace moat::proto {

using moat::is_utf8;  // include/moat/text.h

// JSON text that cannot throw: invalid UTF-8 becomes U+FFFD. For what people
// read; nothing parses the replaced bytes back.
std::string dump_lossy(const nlohmann::json& j, int indent = -1);

using moat::lossy_utf8;

// A wire value for bytes: a CBOR byte string.
nlohmann::json bytes_value(std::string_view s);
// A wire value for human text that may hold bytes (a path in an error): a
// text string when it is UTF-8, else a byte string.
nlohmann::json text_value(std::string_view s);

// The bytes of a text or byte string; nullopt for any other type.
std::optional<std::string> string_bytes(const nlohmann::json& v);

// A reversible JSON form of bytes, for records that must give them back:
// the string itself when it is UTF-8, else {"hex": "<lowercase hex>"}.
nlohmann::json bytes_to_json(std::string_view s);
std::optional<std::string> bytes_from_json(const nlohmann::json& v);
nlohmann::json bytes_list_to_json(const std::vector<std::string>& list);
std::optional<std::vector<std::string>> bytes_list_from_json(const nlohmann::json& v);

}  // namespace moat::proto
