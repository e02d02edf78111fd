// A split virtqueue (virtio 1.x, section 2.7) on the device side: takes
// descriptor chains the driver made available and returns them as used.
//
// The driver (the guest kernel) is untrusted and writes the ring while we
// read it. Each shared field is read once into a local before it is checked;
// every index is checked against the queue size, every address range
// against guest memory (guest_memory.h); chains are bounded in length (no
// loops), an indirect table may only be the head and may not nest, readable
// descriptors must come before writable ones, and the readable bytes of one
// chain must fit the request buffer. Any violation is an error and the
// caller stops using the queue (it is broken until reset): retrying a ring
// the guest corrupted would only repeat the error.
//
// Not thread-safe: one worker owns a Virtqueue.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "util/result.h"
#include "vhost_user/guest_memory.h"

namespace moat::vhost_user {

// Where the rings are (frontend virtual addresses, as SET_VRING_ADDR gives
// them) and how the queue was negotiated.
struct VirtqueueLayout {
  std::uint16_t num = 0;  // queue size, a power of two
  std::uint64_t desc_addr = 0;
  std::uint64_t avail_addr = 0;
  std::uint64_t used_addr = 0;
  std::uint16_t last_avail = 0;  // SET_VRING_BASE: where the device resumes
  bool event_idx = false;        // VIRTIO_RING_F_EVENT_IDX negotiated
  bool indirect = false;         // VIRTIO_RING_F_INDIRECT_DESC negotiated
};

// The largest queue size the split ring format allows.
inline constexpr std::uint32_t kVirtqueueMaxSize = 32768;

// One popped chain: its head (to return it) and its device-writable part.
struct VirtqueueChain {
  struct Segment {
    std::uint8_t* data;
    std::uint32_t len;
  };
  std::uint16_t head = 0;
  std::size_t readable = 0;      // bytes gathered into the request buffer
  std::uint64_t writable = 0;    // total bytes of `segments`
  std::vector<Segment> segments; // writable descriptors, in chain order
};

class Virtqueue {
 public:
  // Resolves the ring addresses in `mem` (which must outlive the queue) and
  // checks sizes and alignment.
  static Result<Virtqueue> attach(const GuestMemory& mem, const VirtqueueLayout& layout);

  // Takes the next available chain, gathering its readable bytes into
  // `request`. False when the ring is empty.
  Result<bool> pop(VirtqueueChain& chain, std::span<std::uint8_t> request);

  // Copies `reply` into the chain's writable descriptors; returns the bytes
  // written (at most the chain's writable bytes; the caller checks the
  // reply fits first).
  std::uint32_t scatter(const VirtqueueChain& chain, std::span<const iovec> reply) const;

  // Returns a chain to the driver with `len` bytes written.
  void push(const VirtqueueChain& chain, std::uint32_t len);

  // After pushes: whether the driver wants an interrupt now (flags or
  // used_event). Clears the pending state when it answers true.
  bool should_signal();

  // Before sleeping: tells the driver where we stopped (avail_event with
  // EVENT_IDX) and returns true if more became available meanwhile.
  Result<bool> arm_notification();

  std::uint16_t last_avail() const { return last_avail_; }
  std::uint16_t num() const { return num_; }

 private:
  Result<std::uint16_t> avail_idx() const;
  Status read_chain(std::uint16_t head, VirtqueueChain& chain, std::span<std::uint8_t> request);

  const GuestMemory* mem_ = nullptr;
  std::uint16_t num_ = 0;
  bool event_idx_ = false;
  bool indirect_ = false;
  std::uint8_t* desc_ = nullptr;   // num * 16 bytes
  std::uint8_t* avail_ = nullptr;  // flags, idx, ring[num], used_event
  std::uint8_t* used_ = nullptr;   // flags, idx, ring[num] (8 bytes each), avail_event
  std::uint16_t last_avail_ = 0;
  std::uint16_t used_idx_ = 0;
  std::uint16_t signalled_used_ = 0;  // used idx at the last signal decision
  bool signalled_valid_ = false;      // false until the first decision
  bool pending_ = false;              // pushes since the last interrupt
};

}  // namespace moat::vhost_user
