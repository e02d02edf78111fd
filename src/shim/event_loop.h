// The shim's event loop: one epoll set, one handler per watched descriptor.
//
// Every channel of the shim (QEMU's exit, signals, the client socket, the
// agent channel, each client, the console and QEMU's output, the starter's
// verdict pipe) registers a handler here instead of holding a fixed slot in
// a poll array, so a new channel is one more `add` call.
//
// Watching is level-triggered, like poll(): a descriptor that stays ready is
// reported on every run_once until its handler drains it or its interest is
// changed with `modify`.
//
// Dispatch contract:
//  - A handler receives the ready events (kReadable, kWritable, kError,
//    kHangup; the last two come whether asked for or not).
//  - A handler may add, modify or remove any descriptor, itself included.
//    A removed descriptor's handler is not called again, not even for events
//    already collected in the same run_once; its callable stays alive until
//    it returns, so removing itself is safe.
//  - A descriptor added during dispatch is first reported by the next
//    run_once, even if an earlier registration of the same number had events
//    pending.
//  - Remove a descriptor before closing it: the loop keys handlers by
//    number, and a closed number is soon reused.
//  - Ready handlers run in ascending `priority` order (ties in the kernel's
//    order). `stop_dispatch` ends the current run_once after the running
//    handler; the events not dispatched are reported again next time.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::shim {

class EventLoop {
 public:
  using Events = std::uint32_t;
  using Handler = std::function<void(Events)>;

  static constexpr Events kReadable = EPOLLIN;
  static constexpr Events kWritable = EPOLLOUT;
  static constexpr Events kError = EPOLLERR;
  static constexpr Events kHangup = EPOLLHUP;

  static Result<EventLoop> create();

  EventLoop() = default;  // unusable until assigned from create()
  EventLoop(EventLoop&&) = default;
  EventLoop& operator=(EventLoop&&) = default;

  // Starts watching `fd` for `events`. An fd already watched is an error.
  Status add(int fd, Events events, Handler handler, int priority = 0);
  // Changes what `fd` is watched for; a no-op when nothing changes (the
  // shim recomputes interest every iteration).
  Status modify(int fd, Events events);
  // Stops watching `fd`; unknown descriptors are ignored so that teardown
  // paths need not track what is still registered.
  void remove(int fd);

  bool watches(int fd) const { return by_fd_.count(fd) != 0; }
  std::size_t size() const { return by_fd_.size(); }

  // Waits up to `timeout_ms` (-1: no limit, 0: just look) and dispatches.
  // Returns how many handlers ran: 0 when the time ran out or a signal
  // interrupted the wait.
  Result<int> run_once(int timeout_ms);

  // From a handler: dispatch no further handlers in this run_once.
  void stop_dispatch() { stop_dispatch_ = true; }

 private:
  struct Watch {
    int fd = -1;
    Events events = 0;
    int priority = 0;
    Handler handler;
    bool removed = false;
  };

  explicit EventLoop(UniqueFd epoll_fd) : epoll_fd_(std::move(epoll_fd)) {}

  UniqueFd epoll_fd_;
  // Each registration gets a token never reused, carried in the epoll event:
  // an event collected for a descriptor that was removed and added again in
  // the same dispatch reaches neither handler by mistake.
  std::uint64_t next_token_ = 1;
  std::map<std::uint64_t, std::shared_ptr<Watch>> by_token_;
  std::map<int, std::uint64_t> by_fd_;
  bool stop_dispatch_ = false;
};

}  // namespace moat::shim
