// The QEMU child of a shim: started so that it dies with the shim
// (PR_SET_PDEATHSIG), with the agent and console sockets as inherited fds,
// its stdout and stderr on a pipe the shim copies into a capped log, and a
// pidfd so its exit is an ordinary poll event.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "jail/privileges.h"
#include "jail/root_tree.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::shim {

// A descriptor of the shim that the child gets as `target`.
struct InheritedFd {
  int fd = -1;
  int target = -1;
};

// Where and as whom the child runs (docs/security.md). Empty: the shim's
// namespaces, root and user, with every capability dropped all the same.
struct ChildJail {
  int namespaces = 0;                          // CLONE_NEW* flags (jail/namespaces.h)
  const jail::PreparedRoot* root = nullptr;    // needs CLONE_NEWNS
  const jail::Identity* identity = nullptr;
  std::vector<int> cgroup_procs;  // `cgroup.procs` of each group to join first
};

class QemuProcess {
 public:
  // argv[0] is the binary, an absolute path as seen inside the jail; each
  // of `inherit` is placed at its target in the child (targets above 2);
  // `output_fd` becomes its stdout and stderr; `extra_env` (KEY=VALUE) is
  // added to the shim's allow-listed environment.
  static Result<QemuProcess> start(const std::vector<std::string>& argv, const std::vector<InheritedFd>& inherit,
                                   int output_fd, const ChildJail& jail = {},
                                   const std::vector<std::string>& extra_env = {});

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
  // Held open for the child's life: it sees the read end hang up if the
  // shim died before its parent-death signal was armed (in a new PID
  // namespace it cannot ask for its parent's pid).
  UniqueFd alive_;
  bool exited_ = false;
  int status_ = 0;
};

}  // namespace moat::shim
