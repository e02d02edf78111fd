// A filesystem the agent mounts in the guest at boot, besides the root: a
// virtio-fs volume (a host directory or named volume, served by the shim)
// or a tmpfs. The host passes each one on the kernel command line as
// `moat.mount=<value>`; this is the one definition of that value, used by
// the host to write it and by the agent to read it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat::proto {

struct GuestMount {
  enum class Kind { kVirtiofs, kTmpfs };
  Kind kind = Kind::kVirtiofs;
  std::string tag;        // virtio-fs device tag (kVirtiofs)
  std::string path;       // absolute guest path
  bool read_only = false;
  std::uint64_t size_bytes = 0;  // tmpfs size; 0: the kernel's default (half of RAM)
};

// The most mounts a sandbox may have (bounded for the agent's sake; the
// kernel command line runs out first in practice).
inline constexpr std::size_t kMaxGuestMounts = 32;
// virtio-fs tags are at most 36 bytes (the device config field).
inline constexpr std::size_t kMaxVirtiofsTag = 36;

// "<kind>,<tag>,<hex of path>,<ro|rw>,<size>": no spaces or commas of the
// path can reach the command line.
std::string encode_guest_mount(const GuestMount& m);
Result<GuestMount> decode_guest_mount(std::string_view value);

}  // namespace moat::proto
