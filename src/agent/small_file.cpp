#include "agent/small_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace moat::agent {

std::string read_small_file(const std::string& path, std::size_t max_bytes) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[8192];
  while (out.size() < max_bytes) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (out.size() > max_bytes) out.resize(max_bytes);
  return out;
}

std::string read_first_line(const std::string& path) {
  std::string s = read_small_file(path, 4096);
  auto nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace moat::agent
