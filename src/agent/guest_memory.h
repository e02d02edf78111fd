// The guest's memory as `moat stats` shows it: MemTotal and MemAvailable of
// /proc/meminfo, in bytes, for the shim's `stats` question
// (proto/message.h).
#pragma once

#include <cstdint>
#include <string_view>

namespace moat::agent {

struct GuestMemory {
  std::uint64_t total_bytes = 0;
  std::uint64_t available_bytes = 0;
};

// The two lines of a /proc/meminfo text ("MemTotal:  1024 kB"); a line that
// is missing or malformed reads as 0.
GuestMemory parse_meminfo(std::string_view text);

// This guest's, now.
GuestMemory read_guest_memory();

}  // namespace moat::agent
