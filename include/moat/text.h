// Arguments, paths, environment entries and file names in moat are bytes, not
// necessarily UTF-8 (a guest may hold any name). Front ends that show them
// as text use these.
#pragma once

#include <string>
#include <string_view>

namespace moat {

bool is_utf8(std::string_view bytes);
// `bytes` with every invalid UTF-8 sequence replaced by U+FFFD, for display.
std::string lossy_utf8(std::string_view bytes);

}  // namespace moat
