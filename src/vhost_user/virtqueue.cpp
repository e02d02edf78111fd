#include "vhost_user/virtqueue.h"

#include <atomic>
#include <bit>
#include <cstring>
#include <string>

namespace moat::vhost_user {

static_assert(std::endian::native == std::endian::little,
              "virtio 1.x rings are little-endian; this code reads them natively");

namespace {

// From the virtio spec (linux/virtio_ring.h is not valid C++).
constexpr std::uint16_t VRING_DESC_F_NEXT = 1;
constexpr std::uint16_t VRING_DESC_F_WRITE = 2;
constexpr std::uint16_t VRING_DESC_F_INDIRECT = 4;
constexpr std::uint16_t VRING_AVAIL_F_NO_INTERRUPT = 1;

constexpr std::size_t kDescSize = 16;
constexpr std::size_t kUsedElemSize = 8;

struct Desc {
  std::uint64_t addr;
  std::uint32_t len;
  std::uint16_t flags;
  std::uint16_t next;
};
static_assert(sizeof(Desc) == kDescSize);

// Shared 16-bit ring fields the driver updates concurrently: read and
// written as atomics (the addresses are checked to be 2-aligned).
std::uint16_t load16(std::uint8_t* p, std::memory_order order = std::memory_order_relaxed) {
  return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(p)).load(order);
}
void store16(std::uint8_t* p, std::uint16_t v, std::memory_order order = std::memory_order_relaxed) {
  std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(p)).store(v, order);
}

Error ring_error(const std::string& what) { return make_error("virtqueue: " + what, EPROTO); }

// virtio's vring_need_event: has `new_idx` moved past `event` since `old`?
bool need_event(std::uint16_t event, std::uint16_t new_idx, std::uint16_t old) {
  return static_cast<std::uint16_t>(new_idx - event - 1) < static_cast<std::uint16_t>(new_idx - old);
}

}  // namespace

Result<Virtqueue> Virtqueue::attach(const GuestMemory& mem, const VirtqueueLayout& layout) {
  std::uint32_t num = layout.num;
  if (num == 0 || num > kVirtqueueMaxSize || !std::has_single_bit(num))
    return ring_error("queue size " + std::to_string(num) + " is not a power of two <= 32768");
  if (layout.desc_addr % 16 || layout.avail_addr % 2 || layout.used_addr % 4)
    return ring_error("misaligned ring address");
  Virtqueue q;
  q.mem_ = &mem;
  q.num_ = static_cast<std::uint16_t>(num);
  q.event_idx_ = layout.event_idx;
  q.indirect_ = layout.indirect;
  // The avail and used rings include their trailing event field whether or
  // not EVENT_IDX is in use, as the driver allocates them that way.
  MOAT_ASSIGN_OR_RETURN(q.desc_, mem.frontend(layout.desc_addr, kDescSize * num));
  MOAT_ASSIGN_OR_RETURN(q.avail_, mem.frontend(layout.avail_addr, 6 + 2 * num));
  MOAT_ASSIGN_OR_RETURN(q.used_, mem.frontend(layout.used_addr, 6 + kUsedElemSize * num));
  q.last_avail_ = layout.last_avail;
  q.used_idx_ = load16(q.used_ + 2, std::memory_order_acquire);
  return q;
}

Result<std::uint16_t> Virtqueue::avail_idx() const {
  std::uint16_t idx = load16(avail_ + 2, std::memory_order_acquire);
  if (static_cast<std::uint16_t>(idx - last_avail_) > num_)
    return ring_error("avail index " + std::to_string(idx) + " is more than " +
                      std::to_string(num_) + " ahead of " + std::to_string(last_avail_));
  return idx;
}

Result<bool> Virtqueue::pop(VirtqueueChain& chain, std::span<std::uint8_t> request) {
  MOAT_ASSIGN_OR_RETURN(std::uint16_t idx, avail_idx());
  if (idx == last_avail_) return false;
  // The acquire load of idx orders the ring entry and descriptors after it.
  std::uint16_t head = load16(avail_ + 4 + 2 * (last_avail_ % num_));
  if (head >= num_) return ring_error("chain head " + std::to_string(head) + " out of range");
  MOAT_TRY(read_chain(head, chain, request));
  ++last_avail_;
  return true;
}

Status Virtqueue::read_chain(std::uint16_t head, VirtqueueChain& chain,
                             std::span<std::uint8_t> request) {
  chain.head = head;
  chain.readable = 0;
  chain.writable = 0;
  chain.segments.clear();
  const std::uint8_t* table = desc_;
  std::uint32_t table_len = num_;
  std::uint32_t i = head;
  Desc d;
  std::memcpy(&d, table + kDescSize * i, sizeof d);
  if (d.flags & VRING_DESC_F_INDIRECT) {
    if (!indirect_) return ring_error("indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC");
    if (d.flags & VRING_DESC_F_NEXT) return ring_error("indirect descriptor with NEXT");
    if (d.len == 0 || d.len % kDescSize || d.len / kDescSize > kVirtqueueMaxSize)
      return ring_error("indirect table of " + std::to_string(d.len) + " bytes");
    if (d.addr % 16) return ring_error("misaligned indirect table");
    MOAT_ASSIGN_OR_RETURN(table, mem_->guest(d.addr, d.len));
    table_len = d.len / kDescSize;
    i = 0;
    std::memcpy(&d, table, sizeof d);
  }
  // Each descriptor of a table may appear once: more steps than entries
  // means a loop.
  for (std::uint32_t steps = 1;; ++steps) {
    if (d.flags & VRING_DESC_F_INDIRECT) return ring_error("nested or non-head indirect descriptor");
    MOAT_ASSIGN_OR_RETURN(std::uint8_t * p, mem_->guest(d.addr, d.len));
    if (d.flags & VRING_DESC_F_WRITE) {
      chain.writable += d.len;
      if (chain.writable > UINT32_MAX) return ring_error("writable part exceeds 4 GiB");
      chain.segments.push_back({p, d.len});
    } else {
      if (!chain.segments.empty()) return ring_error("readable descriptor after a writable one");
      if (d.len > request.size() - chain.readable)
        return ring_error("request larger than " + std::to_string(request.size()) + " bytes");
      std::memcpy(request.data() + chain.readable, p, d.len);
      chain.readable += d.len;
    }
    if (!(d.flags & VRING_DESC_F_NEXT)) return ok_status();
    if (steps >= table_len) return ring_error("descriptor chain loops or is longer than its table");
    i = d.next;
    if (i >= table_len) return ring_error("next descriptor " + std::to_string(i) + " out of range");
    std::memcpy(&d, table + kDescSize * i, sizeof d);
  }
}

std::uint32_t Virtqueue::scatter(const VirtqueueChain& chain, std::span<const iovec> reply) const {
  std::size_t seg = 0, seg_off = 0;
  std::uint32_t written = 0;
  for (const iovec& v : reply) {
    auto* src = static_cast<const std::uint8_t*>(v.iov_base);
    std::size_t left = v.iov_len;
    while (left > 0 && seg < chain.segments.size()) {
      const auto& s = chain.segments[seg];
      std::size_t n = std::min<std::size_t>(left, s.len - seg_off);
      std::memcpy(s.data + seg_off, src, n);
      src += n;
      left -= n;
      seg_off += n;
      written += static_cast<std::uint32_t>(n);
      if (seg_off == s.len) {
        ++seg;
        seg_off = 0;
      }
    }
  }
  return written;
}

void Virtqueue::push(const VirtqueueChain& chain, std::uint32_t len) {
  std::uint8_t* elem = used_ + 4 + kUsedElemSize * (used_idx_ % num_);
  std::uint32_t id = chain.head;
  std::memcpy(elem, &id, 4);
  std::memcpy(elem + 4, &len, 4);
  ++used_idx_;
  // Release: the element and the reply bytes are visible before the index.
  store16(used_ + 2, used_idx_, std::memory_order_release);
  pending_ = true;
}

bool Virtqueue::should_signal() {
  if (!pending_) return false;
  // The used index store must be visible before we read the driver's
  // suppression state, or both sides could decide not to notify.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool signal;
  if (event_idx_) {
    std::uint16_t event = load16(avail_ + 4 + 2 * num_);
    signal = !signalled_valid_ || need_event(event, used_idx_, signalled_used_);
  } else {
    signal = !(load16(avail_) & VRING_AVAIL_F_NO_INTERRUPT);
  }
  pending_ = false;
  // As in the spec's example: the next decision compares against this point
  // whether or not we interrupted now.
  signalled_used_ = used_idx_;
  signalled_valid_ = true;
  return signal;
}

Result<bool> Virtqueue::arm_notification() {
  if (event_idx_) store16(used_ + 4 + kUsedElemSize * num_, last_avail_);
  // Publish avail_event before re-reading avail idx (the driver does the
  // mirror image: writes idx, then reads avail_event).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  MOAT_ASSIGN_OR_RETURN(std::uint16_t idx, avail_idx());
  return idx != last_avail_;
}

}  // namespace moat::vhost_user
