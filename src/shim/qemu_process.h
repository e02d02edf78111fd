// The QEMU child of a shim: started so that it dies with the shim
// (PR_SET_PDEATHSIG), with the agent and console sockets as inherited fds,
// its stdout and stderr on a pipe the shim copies into a capped log, and a
// pidfd so its exit is an ordinary poll event.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::shim {

// A descriptor of the shim that the child gets as `target`.
struct InheritedFd {
  int fd = -1;
  int target = -1;
};

class QemuProcess {
 public:
  // argv[0] is the binary; each of `inherit` is placed at its target in the
  // child (targets above 2); `output_fd` becomes its stdout and stderr.
  static Result<QemuProcess> start(const std::vector<std::string>& argv, const std::vector<InheritedFd>& inherit,
                                   int output_fd);

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }

  // Non-blocking: true once the process has been reaped; the wait status is kept.
  bool reap();
  bool exited() const { return exited_; }
  int wait_status() const { return status_; }
  void signal(int sig);
  // Human-readable exit description, e.g. "exited with status 1".
  std::string describe_exit() const;

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  bool exited_ = false;
  int status_ = 0;
};

}  // namespace moat::shim
