#include "agent/guest_memory.h"

#include <string>

#include "agent/small_file.h"
#include "agent/text_fields.h"

namespace moat::agent {
namespace {

// The value of the line that starts with `key` (e.g. "MemTotal:"), in
// bytes: the kernel writes it in kB.
std::uint64_t kib_line(std::string_view text, std::string_view key) {
  std::uint64_t bytes = 0;
  for_each_line(text, [&](std::string_view line) {
    if (line.substr(0, key.size()) != key) return true;
    std::uint64_t kib = 0;
    bool digits = false;
    for (char ch : line.substr(key.size())) {
      if (ch == ' ') {
        if (digits) break;
        continue;
      }
      if (ch < '0' || ch > '9') return false;
      if (kib > (UINT64_MAX / 1024 - 9) / 10) return false;  // no overflow, even as bytes
      kib = kib * 10 + static_cast<std::uint64_t>(ch - '0');
      digits = true;
    }
    bytes = kib * 1024;
    return false;
  });
  return bytes;
}

}  // namespace

GuestMemory parse_meminfo(std::string_view text) {
  return GuestMemory{kib_line(text, "MemTotal:"), kib_line(text, "MemAvailable:")};
}

GuestMemory read_guest_memory() { return parse_meminfo(read_small_file("/proc/meminfo", 64 * 1024)); }

}  // namespace moat::agent
