#include "agent/guest_memory.h"

#include <string>

#include "agent/small_file.h"

namespace moat::agent {
namespace {

// The value of the line that starts with `key` (e.g. "MemTotal:"), in
// bytes: the kernel writes it in kB.
std::uint64_t kib_line(std::string_view text, std::string_view key) {
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (line.substr(0, key.size()) != key) continue;
    std::uint64_t kib = 0;
    bool digits = false;
    for (char ch : line.substr(key.size())) {
      if (ch == ' ') {
        if (digits) break;
        continue;
      }
      if (ch < '0' || ch > '9') return 0;
      if (kib > (UINT64_MAX / 1024 - 9) / 10) return 0;  // no overflow, even as bytes
      kib = kib * 10 + static_cast<std::uint64_t>(ch - '0');
      digits = true;
    }
    return kib * 1024;
  }
  return 0;
}

}  // namespace

GuestMemory parse_meminfo(std::string_view text) {
  return GuestMemory{kib_line(text, "MemTotal:"), kib_line(text, "MemAvailable:")};
}

GuestMemory read_guest_memory() { return parse_meminfo(read_small_file("/proc/meminfo", 64 * 1024)); }

}  // namespace moat::agent
