#include "vhost_user/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace moat::vhost_user {

Result<UniqueFd> make_event_fd() {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return errno_error("eventfd");
  return UniqueFd(fd);
}

void notify_event_fd(int fd) {
  std::uint64_t one = 1;
  // EAGAIN (counter saturated) still leaves the fd readable: nothing lost.
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

void drain_event_fd(int fd) {
  std::uint64_t v;
  [[maybe_unused]] ssize_t n = ::read(fd, &v, sizeof v);
}

}  // namespace moat::vhost_user
