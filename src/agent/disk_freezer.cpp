#include "agent/disk_freezer.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace moat::agent {
namespace {

// Freezing waits for writers in flight and flushes the journal; thawing is
// immediate. Both are bounded so the agent's loop never waits for ever.
constexpr int kFreezeWaitMs = 60 * 1000;
constexpr int kThawWaitMs = 10 * 1000;

// Reads one status byte, waiting up to timeout_ms. 0 on timeout or EOF.
char read_status(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, timeout_ms);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return 0;
  char c = 0;
  ssize_t r;
  do {
    r = ::read(fd, &c, 1);
  } while (r < 0 && errno == EINTR);
  return r == 1 ? c : 0;
}

void write_status(int fd, char c) {
  ssize_t r;
  do {
    r = ::write(fd, &c, 1);
  } while (r < 0 && errno == EINTR);
}

// The child: freeze, report, wait for the word or the limit, thaw, report.
[[noreturn]] void hold_freeze(int fs_fd, int command_fd, int status_fd, int limit_ms) {
  if (::ioctl(fs_fd, FIFREEZE, 0) != 0) {
    write_status(status_fd, 'X');
    char err = static_cast<char>(errno > 0 && errno < 127 ? errno : EIO);
    write_status(status_fd, err);
    ::_exit(1);
  }
  write_status(status_fd, 'F');
  struct pollfd p = {command_fd, POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, limit_ms);
  } while (n < 0 && errno == EINTR);
  // Thaw whatever the reason; retry briefly if the kernel is busy.
  for (int i = 0; i < 100 && ::ioctl(fs_fd, FITHAW, 0) != 0 && errno != EINVAL; ++i) ::usleep(10000);
  write_status(status_fd, n == 0 ? 'E' : 'T');
  ::_exit(0);
}

}  // namespace

DiskFreezer::~DiskFreezer() {
  if (child_ > 0) (void)thaw();
}

Status DiskFreezer::freeze(int fs_handle, std::uint32_t stream, std::chrono::milliseconds limit) {
  if (holder_) return make_error("the disk is already frozen for another copy", EBUSY);
  if (fs_handle < 0) return make_error("this sandbox's root has no writable upper filesystem", ENODEV);
  // FIFREEZE needs a real descriptor, not the O_PATH handle.
  std::string path = "/proc/self/fd/" + std::to_string(fs_handle);
  UniqueFd fs(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fs) return errno_error("open the upper filesystem");
  int command[2], status[2];
  if (::pipe2(command, O_CLOEXEC) != 0) return errno_error("pipe");
  if (::pipe2(status, O_CLOEXEC) != 0) {
    ::close(command[0]);
    ::close(command[1]);
    return errno_error("pipe");
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    for (int fd : {command[0], command[1], status[0], status[1]}) ::close(fd);
    return errno_error("fork the freezer", err);
  }
  if (pid == 0) {
    ::close(command[1]);
    ::close(status[0]);
    // Restore the default signal state the agent's loop changed.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    hold_freeze(fs.get(), command[0], status[1], static_cast<int>(limit.count()));
  }
  ::close(command[0]);
  ::close(status[1]);
  child_ = pid;
  reaped_ = false;
  command_.reset(command[1]);
  status_.reset(status[0]);
  char c = read_status(status_.get(), kFreezeWaitMs);
  if (c == 'F') {
    holder_ = stream;
    return ok_status();
  }
  int err = EIO;
  std::string why = "the freezer did not answer";
  if (c == 'X') {
    char e = read_status(status_.get(), kThawWaitMs);
    err = e > 0 ? e : EIO;
    why = "FIFREEZE";
  }
  if (c == 0) ::kill(child_, SIGKILL);
  reap();
  return errno_error("freeze the upper filesystem: " + why, err);
}

Result<bool> DiskFreezer::thaw() {
  if (child_ <= 0) return make_error("the disk is not frozen", EINVAL);
  char word = 'T';
  (void)::write(command_.get(), &word, 1);
  char c = read_status(status_.get(), kThawWaitMs);
  if (c == 0) ::kill(child_, SIGKILL);  // cannot happen unless the kernel hangs
  reap();
  if (c == 0) return make_error("the freezer did not answer the thaw", EIO);
  return c == 'T';
}

void DiskFreezer::reap() {
  if (!reaped_) {
    while (::waitpid(child_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  child_ = -1;
  reaped_ = false;
  holder_.reset();
  command_.reset();
  status_.reset();
}

}  // namespace moat::agent
