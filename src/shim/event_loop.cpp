#include "shim/event_loop.h"

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

namespace moat::shim {
namespace {

// Events per epoll_wait: more ready descriptors than this are simply
// reported by the next call (level-triggered).
constexpr int kMaxEventsPerWait = 64;

}  // namespace

Result<EventLoop> EventLoop::create() {
  UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd) return errno_error("epoll_create1");
  return EventLoop(std::move(fd));
}

Status EventLoop::add(int fd, Events events, Handler handler, int priority) {
  if (fd < 0) return make_error("event loop: cannot watch descriptor " + std::to_string(fd), EBADF);
  if (watches(fd)) return make_error("event loop: descriptor " + std::to_string(fd) + " is already watched", EEXIST);
  std::uint64_t token = next_token_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
    return errno_error("epoll_ctl add " + std::to_string(fd));
  auto watch = std::make_shared<Watch>();
  watch->fd = fd;
  watch->events = events;
  watch->priority = priority;
  watch->handler = std::move(handler);
  by_token_[token] = std::move(watch);
  by_fd_[fd] = token;
  return ok_status();
}

Status EventLoop::modify(int fd, Events events) {
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return make_error("event loop: descriptor " + std::to_string(fd) + " is not watched", ENOENT);
  Watch& watch = *by_token_.at(it->second);
  if (watch.events == events) return ok_status();
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = it->second;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &ev) != 0)
    return errno_error("epoll_ctl modify " + std::to_string(fd));
  watch.events = events;
  return ok_status();
}

void EventLoop::remove(int fd) {
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return;
  // Fails harmlessly (EBADF) when the descriptor is already closed: closing
  // the last reference takes it out of the set anyway.
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  auto watch = by_token_.find(it->second);
  watch->second->removed = true;
  by_token_.erase(watch);
  by_fd_.erase(it);
}

Result<int> EventLoop::run_once(int timeout_ms) {
  epoll_event ready[kMaxEventsPerWait];
  int n = ::epoll_wait(epoll_fd_.get(), ready, kMaxEventsPerWait, timeout_ms);
  if (n < 0 && errno == EINTR) return 0;
  if (n < 0) return errno_error("epoll_wait");

  // Collected before any handler runs: a handler that removes a watch drops
  // it from the maps, but the shared pointer held here keeps its callable
  // alive and its `removed` flag tells the dispatch to skip it.
  struct Due {
    std::shared_ptr<Watch> watch;
    Events events;
  };
  std::vector<Due> due;
  due.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    auto it = by_token_.find(ready[i].data.u64);
    if (it != by_token_.end()) due.push_back({it->second, ready[i].events});
  }
  std::stable_sort(due.begin(), due.end(),
                   [](const Due& a, const Due& b) { return a.watch->priority < b.watch->priority; });

  stop_dispatch_ = false;
  int dispatched = 0;
  for (Due& d : due) {
    if (stop_dispatch_) break;
    if (d.watch->removed) continue;
    d.watch->handler(d.events);
    ++dispatched;
  }
  stop_dispatch_ = false;
  return dispatched;
}

}  // namespace moat::shim
