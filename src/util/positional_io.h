// Reading and writing a whole buffer at an offset (pread/pwrite), retrying
// short transfers and EINTR; header only, for every component.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>

#include "util/result.h"

namespace moat {

// Exactly `n` bytes at `at`; a file that ends first is an error (EIO).
// `what` names the operation in errors ("reading the saved RAM").
inline Status pread_fully(int fd, char* buf, std::size_t n, off_t at, const std::string& what) {
  while (n > 0) {
    ssize_t got = ::pread(fd, buf, n, at);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno_error(what);
    if (got == 0) return make_error(what + ": the file shrank while being read", EIO);
    buf += got;
    n -= static_cast<std::size_t>(got);
    at += got;
  }
  return ok_status();
}

inline Status pwrite_fully(int fd, const char* buf, std::size_t n, off_t at, const std::string& what) {
  while (n > 0) {
    ssize_t put = ::pwrite(fd, buf, n, at);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) return errno_error(what);
    if (put == 0) return make_error(what + ": nothing was written", EIO);
    buf += put;
    n -= static_cast<std::size_t>(put);
    at += put;
  }
  return ok_status();
}

}  // namespace moat
