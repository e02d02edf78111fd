// The values the host puts on the guest kernel's command line (moat.* words)
// and the guest host name, shared by the host that writes them and the agent
// that reads them.
//
// The kernel splits its command line at spaces, honours double quotes, and
// hands words it does not know to init (as arguments, or as environment when
// they hold '='). A value with a space, quote or control byte would therefore
// add words of its own (`moat.port=`, `init=`). So every value is encoded:
// each byte outside [A-Za-z0-9._,:/+-] becomes %XX, and the agent decodes it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat::proto {

// Linux keeps host names of at most 64 bytes (__NEW_UTS_LEN).
inline constexpr std::size_t kMaxHostnameLength = 64;

std::string encode_boot_value(std::string_view value);
// The decoded value, or nullopt if a '%' is not followed by two hex digits.
std::optional<std::string> decode_boot_value(std::string_view encoded);
// "key=<encoded value>": always exactly one word of the command line.
std::string boot_word(std::string_view key, std::string_view value);

// RFC 1123 host names: labels of 1 to 63 letters, digits and '-', neither
// starting nor ending with '-', joined by '.', at most 253 bytes in all; and,
// for the guest kernel, at most kMaxHostnameLength bytes.
bool valid_hostname(std::string_view name);
// The same check, with an error saying what is wrong (EINVAL).
Status check_hostname(std::string_view name);

}  // namespace moat::proto
