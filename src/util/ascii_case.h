// ASCII case folding for protocol text (header names, schemes, media
// types), which is ASCII by definition; header-only, so front ends use it.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

namespace moat {

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace moat
