// Reading the kernel's text tables (/proc/self/mounts, /proc/net/tcp,
// /proc/meminfo): lines, and fields separated by runs of spaces.
#pragma once

#include <cstddef>
#include <string_view>

namespace moat::agent {

// Calls `fn(line)` for each line of `text`, without its newline (a last line
// without one counts), until `fn` returns false.
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    if (!fn(text.substr(at, end - at))) return;
    at = end + 1;
  }
}

// The field of `line` at or after `at`, which moves past it; empty at the end.
inline std::string_view next_field(std::string_view line, std::size_t& at) {
  while (at < line.size() && line[at] == ' ') ++at;
  std::size_t start = at;
  while (at < line.size() && line[at] != ' ') ++at;
  return line.substr(start, at - start);
}

}  // namespace moat::agent
