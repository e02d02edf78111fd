// Reading a whole file of bounded size: configuration, keys, certificates.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat {

// The file's bytes. Errors name the path: "open PATH: No such file or
// directory" (ENOENT, for callers that treat a missing file as empty),
// "PATH is larger than MAX bytes" (EFBIG).
inline Result<std::string> read_file_bounded(const std::string& path, std::size_t max) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open " + path);
  std::string data;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read " + path);
    if (n == 0) return data;
    data.append(buf, static_cast<std::size_t>(n));
    if (data.size() > max) return make_error(path + " is larger than " + std::to_string(max) + " bytes", EFBIG);
  }
}

}  // namespace moat
