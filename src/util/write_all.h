// Writing a whole buffer to a descriptor, for every component (the static
// guest agent too: header only, needs nothing but libc and moat/result.h).
#pragma once

#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat {

// Writes all of `data`, retrying short writes and EINTR. Returns 0, or the
// errno of the write that failed (EIO for one that wrote nothing), so a
// caller that treats one errno as an ordinary end (EPIPE) can tell it apart.
inline int write_fully(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;  // never ends otherwise
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

// write_fully as a Status whose message is `what` and the errno's text.
inline Status write_all(int fd, std::string_view data, const std::string& what = "write") {
  int err = write_fully(fd, data);
  if (err == 0) return ok_status();
  return errno_error(what, err);
}

}  // namespace moat
