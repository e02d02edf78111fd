#include "agent/channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

#include "agent/small_file.h"

namespace moat::agent {
namespace {

std::string read_line(const std::string& path) { return read_first_line(path); }

// The port's device node; devtmpfs normally creates it, but make one from
// sysfs's dev attribute if not.
Result<UniqueFd> open_port_device(const std::string& port) {
  std::string dev = "/dev/" + port;
  UniqueFd fd(::open(dev.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY));
  if (fd) return fd;
  std::string majmin = read_line("/sys/class/virtio-ports/" + port + "/dev");
  unsigned maj = 0, min = 0;
  if (std::sscanf(majmin.c_str(), "%u:%u", &maj, &min) == 2) {
    ::mknod(dev.c_str(), S_IFCHR | 0600, makedev(maj, min));
    fd.reset(::open(dev.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY));
    if (fd) return fd;
  }
  return errno_error("open " + dev);
}

}  // namespace

Result<UniqueFd> open_virtio_port(const std::string& port_name, int timeout_ms) {
  struct timespec step {0, 2 * 1000 * 1000};
  for (int waited = 0;; waited += 2) {
    if (DIR* dir = ::opendir("/sys/class/virtio-ports")) {
      while (struct dirent* e = ::readdir(dir)) {
        std::string port = e->d_name;
        if (port == "." || port == "..") continue;
        if (read_line("/sys/class/virtio-ports/" + port + "/name") == port_name) {
          ::closedir(dir);
          return open_port_device(port);
        }
      }
      ::closedir(dir);
    }
    if (waited >= timeout_ms) break;
    ::nanosleep(&step, nullptr);
  }
  return make_error("no virtio-serial port named \"" + port_name + "\"");
}

}  // namespace moat::agent
