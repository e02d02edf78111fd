#include "shim/qemu_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "jail/privileges.h"
#include "vm/child_env.h"

namespace moat::shim {

namespace {

// Above any descriptor a target may name: the sources are moved here first so
// that placing one never overwrites another that is still to be placed.
constexpr int kStagingFd = 100;

}  // namespace

Result<QemuProcess> QemuProcess::start(const std::vector<std::string>& argv, const std::vector<InheritedFd>& inherit,
                                       int output_fd) {
  if (inherit.size() > 8) return make_error("too many descriptors for QEMU");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The shim's environment is allow-listed already (sandbox/shim_launcher);
  // QEMU gets the same list, so a shim started another way leaks nothing.
  std::vector<std::string> env_storage;
  std::vector<char*> envp = vm::child_envp(environ, env_storage);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork for QEMU");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);  // the shim died before prctl took effect
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);  // only its copy on 0 stays
    ::dup2(devnull, 0);
    ::dup2(output_fd, 1);
    ::dup2(output_fd, 2);
    int staged[8];
    std::size_t count = inherit.size() < 8 ? inherit.size() : 8;
    for (std::size_t i = 0; i < count; ++i) staged[i] = ::fcntl(inherit[i].fd, F_DUPFD_CLOEXEC, kStagingFd);
    for (std::size_t i = 0; i < count; ++i) ::dup2(staged[i], inherit[i].target);  // the copy is not CLOEXEC
    // The guest runs inside this process: it keeps no privilege (jail/privileges.h).
    if (int err = jail::drop_privileges_before_exec(); err != 0) {
      const char* what = "dropping QEMU's privileges failed: ";
      ssize_t w = ::write(2, what, std::strlen(what));
      w = ::write(2, std::strerror(err), std::strlen(std::strerror(err)));
      w = ::write(2, "\n", 1);
      (void)w;
      ::_exit(126);
    }
    ::execvpe(args[0], args.data(), envp.data());
    std::string msg = std::string("exec ") + args[0] + ": " + std::strerror(errno) + "\n";
    ssize_t w = ::write(2, msg.data(), msg.size());
    (void)w;
    ::_exit(127);
  }
  QemuProcess q;
  q.pid_ = pid;
  q.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!q.pidfd_) return errno_error("pidfd_open");
  return q;
}

bool QemuProcess::reap() {
  if (exited_) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    status_ = status;
  }
  return exited_;
}

void QemuProcess::signal(int sig) {
  if (!exited_ && pid_ > 0) ::kill(pid_, sig);
}

std::string QemuProcess::describe_exit() const {
  if (!exited_) return "still running";
  if (WIFEXITED(status_)) return "exited with status " + std::to_string(WEXITSTATUS(status_));
  if (WIFSIGNALED(status_)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(status_));
  return "ended";
}

}  // namespace moat::shim
