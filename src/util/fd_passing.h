// Passing descriptors over a unix socket (SCM_RIGHTS): received from
// fusermount3 (one /dev/fuse fd) and from a vhost-user frontend (memory
// regions, eventfds); sent to an OCI engine's console socket (a pty master).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <vector>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat {

// The most descriptors one receive_with_fds call accepts.
inline constexpr std::size_t kMaxPassedFds = 16;

struct Received {
  ssize_t bytes = 0;       // what recvmsg returned: 0 at end of stream, -1 on error
  int error = 0;           // recvmsg's errno when bytes < 0
  bool truncated = false;  // the sender passed more descriptors than there was room for
};

// One recvmsg of up to `len` bytes into `buf`, retried on EINTR. Every
// descriptor that arrives is appended to `fds` (close-on-exec) before
// anything is checked, so none leaks whatever the caller decides next.
// max_fds is at most kMaxPassedFds. The room is rounded up to the control
// message alignment, so one more than an odd max_fds can arrive without
// `truncated`: a caller that needs an exact count checks fds.size().
Received receive_with_fds(int sock, void* buf, std::size_t len, std::size_t max_fds,
                          std::vector<UniqueFd>& fds);

// One sendmsg of `len` bytes (at least one: a stream peer needs a byte to
// receive the descriptors with) carrying `fds` (at most kMaxPassedFds),
// retried on EINTR. The caller keeps its descriptors.
Status send_with_fds(int sock, const void* buf, std::size_t len, const std::vector<int>& fds);

}  // namespace moat
