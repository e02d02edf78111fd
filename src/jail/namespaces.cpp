#include "jail/namespaces.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace moat::jail {

pid_t fork_into_namespaces(int flags) {
  // A null stack: the child runs on a copy of the caller's, as with fork.
  return static_cast<pid_t>(::syscall(SYS_clone, static_cast<unsigned long>(flags) | SIGCHLD, nullptr, nullptr,
                                      nullptr, 0UL));
}

}  // namespace moat::jail
