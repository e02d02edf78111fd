// The guest's memory as a vhost-user frontend describes it: regions of guest
// physical address space, each backed by a file descriptor we map shared.
//
// Everything that points into this memory comes from the guest (descriptor
// addresses and lengths) or the frontend (ring addresses), so every
// translation checks the whole range: a range that wraps, crosses a region's
// end or lies outside every region is an error, never a pointer.
//
// A GuestMemory is immutable once built; a new SET_MEM_TABLE builds a new one
// while the rings are stopped, and the old mappings go away with the old
// object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::vhost_user {

// One region as SET_MEM_TABLE describes it.
struct GuestRegionSpec {
  std::uint64_t guest_phys = 0;  // guest physical address of the first byte
  std::uint64_t size = 0;
  std::uint64_t user_addr = 0;    // where the frontend (QEMU) maps it
  std::uint64_t mmap_offset = 0;  // offset of the first byte in the fd
};

class GuestMemory {
 public:
  // Without CONFIGURE_MEM_SLOTS the frontend sends at most 8 regions.
  static constexpr std::size_t kMaxRegions = 8;

  GuestMemory() = default;
  ~GuestMemory();
  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&& other) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Maps each region's fd (MAP_SHARED, read-write). Regions may not overlap
  // in either address space, and each must fit in its fd.
  static Result<GuestMemory> map(std::span<const GuestRegionSpec> specs, std::span<UniqueFd> fds);

  // Memory the caller owns (tests, fuzzing): one region at `guest_phys`,
  // frontend address `user_addr`. Not unmapped by this object.
  static Result<GuestMemory> borrow(std::span<std::uint8_t> bytes, std::uint64_t guest_phys,
                                    std::uint64_t user_addr);

  // Host pointer for [addr, addr + len) in guest physical / frontend
  // virtual addresses; the whole range must lie inside one region. len may
  // be 0 (addr must still be inside a region or at its end).
  Result<std::uint8_t*> guest(std::uint64_t addr, std::uint64_t len) const;
  Result<std::uint8_t*> frontend(std::uint64_t addr, std::uint64_t len) const;

  std::size_t regions() const { return regions_.size(); }

 private:
  struct Region {
    GuestRegionSpec spec;
    std::uint8_t* host = nullptr;
    std::size_t map_len = 0;  // 0: borrowed, not ours to unmap
    std::size_t map_skew = 0; // host - mapping start (mmap offsets are page-aligned)
  };
  Result<std::uint8_t*> translate(std::uint64_t addr, std::uint64_t len, bool frontend) const;
  void unmap_all();

  std::vector<Region> regions_;
};

}  // namespace moat::vhost_user
