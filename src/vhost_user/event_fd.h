// Eventfds as the vhost-user backend uses them: kick and call fds from the
// frontend, and its own wake-ups (stop a worker, stop the socket thread,
// report a broken queue).
#pragma once

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::vhost_user {

// A non-blocking, close-on-exec eventfd with a count of 0.
Result<UniqueFd> make_event_fd();

// Adds 1 to the count. Never blocks; a saturated counter still leaves the fd
// readable, so no wake-up is lost.
void notify_event_fd(int fd);

// Resets the count to 0 (no-op if it already is).
void drain_event_fd(int fd);

}  // namespace moat::vhost_user
