// One virtqueue as the vhost-user frontend configured it, and the worker
// thread that serves it while it runs.
//
// The configuration fields are set by the backend's socket thread, and only
// while the worker is stopped; the worker reads them once when it starts
// and writes `base` back when it stops. Only the call fd changes under a
// running worker (QEMU swaps it when it masks interrupts), hence its lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "util/result.h"
#include "util/unique_fd.h"
#include "vhost_user/device.h"
#include "vhost_user/guest_memory.h"
#include "vhost_user/protocol.h"
#include "vhost_user/virtqueue.h"

namespace moat::vhost_user {

class Vring {
 public:
  // Receives the error that broke a running queue (on its worker thread).
  using ErrorSink = std::function<void(Error)>;

  explicit Vring(unsigned index) : index_(index) {}
  ~Vring() { stop(); }
  Vring(const Vring&) = delete;
  Vring& operator=(const Vring&) = delete;

  // Configuration (socket thread only).
  std::uint32_t num = 0;
  VringAddr addr{};
  bool addr_set = false;
  std::uint16_t base = 0;  // SET_VRING_BASE, and where a stopped worker left off
  UniqueFd kick;
  UniqueFd err;  // kept, never written: a broken ring ends run() instead
  bool enabled = false;

  unsigned index() const { return index_; }
  bool running() const { return running_; }
  // Everything a worker needs has been configured.
  bool ready() const { return enabled && kick && addr_set && num != 0; }

  // Attaches the ring in `memory` (negotiated `features`) and starts the
  // worker that serves it with `device`. Both must outlive the worker.
  Status start(const GuestMemory& memory, std::uint64_t features, Device& device,
               ErrorSink on_error);
  // Joins the worker (if any); `base` is then where it stopped.
  void stop();
  // Back to the state after connecting (stops the worker first).
  void reset();

  void set_call(UniqueFd fd);
  // Interrupts the driver through the call fd, if one is set.
  void signal();

 private:
  void serve(Virtqueue queue, Device& device, const ErrorSink& on_error);
  Status drain(Virtqueue& queue, Device& device);
  Error queue_error(const Device& device, const Error& e) const;

  unsigned index_;
  std::mutex call_mu_;
  UniqueFd call_;
  std::thread worker_;
  UniqueFd worker_stop_;
  std::atomic<bool> running_{false};
};

}  // namespace moat::vhost_user
