#include "vhost_user/vring.h"

#include <poll.h>

#include <cerrno>
#include <string>
#include <utility>

#include "vhost_user/event_fd.h"

namespace moat::vhost_user {

Status Vring::start(const GuestMemory& memory, std::uint64_t features, Device& device,
                    ErrorSink on_error) {
  VirtqueueLayout layout;
  layout.num = static_cast<std::uint16_t>(num);
  layout.desc_addr = addr.desc_user_addr;
  layout.avail_addr = addr.avail_user_addr;
  layout.used_addr = addr.used_user_addr;
  layout.last_avail = base;
  layout.event_idx = features & kFeatureEventIdx;
  layout.indirect = features & kFeatureIndirectDesc;
  auto queue = Virtqueue::attach(memory, layout);
  if (!queue.ok()) return queue_error(device, queue.error());
  MOAT_ASSIGN_OR_RETURN(worker_stop_, make_event_fd());
  running_ = true;
  worker_ = std::thread([this, &device, on_error = std::move(on_error),
                         q = std::move(*queue)]() mutable { serve(std::move(q), device, on_error); });
  return ok_status();
}

void Vring::stop() {
  if (!worker_.joinable()) return;
  notify_event_fd(worker_stop_.get());
  worker_.join();
  worker_stop_.reset();
  running_ = false;
}

void Vring::reset() {
  stop();
  num = 0;
  addr_set = false;
  base = 0;
  kick.reset();
  err.reset();
  enabled = false;
  set_call(UniqueFd());
}

void Vring::set_call(UniqueFd fd) {
  std::lock_guard lock(call_mu_);
  call_ = std::move(fd);
}

void Vring::signal() {
  std::lock_guard lock(call_mu_);
  if (call_) notify_event_fd(call_.get());
}

void Vring::serve(Virtqueue queue, Device& device, const ErrorSink& on_error) {
  pollfd fds[2] = {{kick.get(), POLLIN, 0}, {worker_stop_.get(), POLLIN, 0}};
  for (;;) {
    // Drain before the first sleep too: the driver may have queued
    // requests before this ring (re)started.
    Status st = drain(queue, device);
    if (!st.ok()) {
      // The queue is broken; its position stays where the bad chain is.
      base = queue.last_avail();
      on_error(queue_error(device, st.error()));
      return;
    }
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) {
      on_error(queue_error(device, errno_error("poll kick")));
      return;
    }
    if (fds[1].revents) break;
    if (fds[0].revents & POLLIN) drain_event_fd(kick.get());
  }
  base = queue.last_avail();
}

Status Vring::drain(Virtqueue& queue, Device& device) {
  for (;;) {
    MOAT_TRY(device.process_queue(index_, queue));
    if (queue.should_signal()) signal();
    MOAT_ASSIGN_OR_RETURN(bool more, queue.arm_notification());
    if (!more) return ok_status();
  }
}

Error Vring::queue_error(const Device& device, const Error& e) const {
  return e.wrap("virtio-" + std::string(device.name()) + " queue " + std::to_string(index_));
}

}  // namespace moat::vhost_user
