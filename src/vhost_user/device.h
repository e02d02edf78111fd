// What a virtio device type supplies to the vhost-user backend (backend.h).
//
// The backend owns everything of the transport: the socket and its message
// loop, feature negotiation, the guest memory table, the vrings with their
// kick and call fds and worker threads, and REPLY_ACK. A device says what it
// is (feature bits, queues, config space) and serves the chains of a queue;
// it never sees a vhost-user message.
//
// Chains come from the guest and are untrusted: the Virtqueue
// (virtqueue.h) has already checked every descriptor against guest memory,
// but what the bytes say is the device's to validate.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "util/result.h"
#include "vhost_user/virtqueue.h"

namespace moat::vhost_user {

class Device {
 public:
  virtual ~Device() = default;

  // The virtio device type in messages: "fs" makes "vhost-user-fs <socket>"
  // and "virtio-fs queue 1".
  virtual std::string_view name() const = 0;

  // Device-type feature bits offered to the driver. The backend adds the
  // transport and ring features it implements itself (kBackendFeatures in
  // backend.h); a driver that accepts anything else is refused.
  virtual std::uint64_t features() const = 0;

  // Virtqueues the device serves (GET_QUEUE_NUM): 1..kMaxQueues. Queue
  // indexes in process_queue are below it.
  virtual unsigned num_queues() const = 0;

  // The largest queue size accepted in SET_VRING_NUM (1..kVirtqueueMaxSize);
  // the frontend must also pick a power of two.
  virtual unsigned max_queue_size() const = 0;

  // The device configuration space GET_CONFIG reads from. Empty (the
  // default): the device has none and the CONFIG protocol feature is not
  // offered. The bytes must stay valid and unchanged while the backend runs.
  virtual std::span<const std::uint8_t> config() const { return {}; }

  // Serves what the driver made available on queue `index`: pops chains
  // until `queue` is empty, pushing each back with the bytes written. The
  // backend then interrupts the driver if it asked for it and re-arms
  // notification, calling again if more arrived meanwhile.
  //
  // Called on the queue's worker thread. Calls for one queue never overlap;
  // calls for different queues may run at the same time. An error means
  // the ring is broken: the backend stops the queue and run() returns the
  // error.
  virtual Status process_queue(unsigned index, Virtqueue& queue) = 0;
};

// The vring index field of SET_VRING_KICK/CALL/ERR is 8 bits wide.
inline constexpr unsigned kMaxQueues = 256;

}  // namespace moat::vhost_user
