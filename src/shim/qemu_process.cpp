#include "shim/qemu_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "jail/namespaces.h"
#include "jail/privileges.h"
#include "vm/child_env.h"

namespace moat::shim {

namespace {

// Above any descriptor a target may name: the sources are moved here first so
// that placing one never overwrites another that is still to be placed.
constexpr int kStagingFd = 100;
// Agent, console, network, disks and volumes: far fewer than the staging
// range leaves room for.
constexpr std::size_t kMaxInherited = 64;

// Between fork and exec: write(2) only.
void write_message(const char* a, const char* b, const char* c, const char* d) {
  for (const char* part : {a, b, c, d}) {
    if (part == nullptr) continue;
    ssize_t w = ::write(2, part, std::strlen(part));
    (void)w;
  }
  ssize_t w = ::write(2, "\n", 1);
  (void)w;
}

// The child's half: descriptors placed, the jail entered, privileges gone,
// then QEMU. Never returns.
[[noreturn]] void run_child(char* const* args, char* const* envp, const std::vector<InheritedFd>& inherit,
                            int output_fd, int alive_fd, const ChildJail& jail) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Above the descriptors placed below, so none of them replaces it.
  alive_fd = ::fcntl(alive_fd, F_DUPFD_CLOEXEC, kStagingFd);
  // Into its control groups before it allocates anything.
  for (int procs : jail.cgroup_procs) {
    if (::write(procs, "0", 1) != 1) {
      write_message("QEMU's jail: joining its cgroup: ", std::strerror(errno), nullptr, nullptr);
      ::_exit(126);
    }
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);  // only its copy on 0 stays
  ::dup2(devnull, 0);
  ::dup2(output_fd, 1);
  ::dup2(output_fd, 2);
  int staged[kMaxInherited];
  std::size_t count = inherit.size() < kMaxInherited ? inherit.size() : kMaxInherited;
  for (std::size_t i = 0; i < count; ++i) staged[i] = ::fcntl(inherit[i].fd, F_DUPFD_CLOEXEC, kStagingFd);
  for (std::size_t i = 0; i < count; ++i) ::dup2(staged[i], inherit[i].target);  // the copy is not CLOEXEC
  if (jail.root != nullptr) {
    const char* step = "";
    const char* path = "";
    if (int err = jail::enter_root(*jail.root, &step, &path); err != 0) {
      write_message("QEMU's jail: ", step, " ", path);
      write_message("  ", std::strerror(err), nullptr, nullptr);
      ::_exit(126);
    }
  }
  if (jail.namespaces & CLONE_NEWUTS) {
    static const char kHostname[] = "moat-qemu";
    ::sethostname(kHostname, sizeof kHostname - 1);
  }
  // The guest runs inside this process: it keeps no privilege (jail/privileges.h).
  if (int err = jail::drop_privileges_before_exec(jail.identity); err != 0) {
    write_message("dropping QEMU's privileges failed: ", std::strerror(err), nullptr, nullptr);
    ::_exit(126);
  }
  // A change of user clears the death signal: arm it again, then check the
  // shim did not die before (the write end is the shim's alone, and a
  // process in a new PID namespace cannot ask for its parent's pid).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  pollfd alive{alive_fd, POLLIN, 0};
  if (alive_fd < 0 || ::poll(&alive, 1, 0) != 0) ::_exit(1);
  ::execve(args[0], args, envp);
  write_message("exec ", args[0], ": ", std::strerror(errno));
  ::_exit(127);
}

}  // namespace

Result<QemuProcess> QemuProcess::start(const std::vector<std::string>& argv, const std::vector<InheritedFd>& inherit,
                                       int output_fd, const ChildJail& jail,
                                       const std::vector<std::string>& extra_env) {
  if (inherit.size() > kMaxInherited) return make_error("too many descriptors for QEMU", E2BIG);
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
    return make_error("QEMU's path must be absolute", EINVAL);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The shim's environment is allow-listed already (sandbox/shim_launcher);
  // QEMU gets the same list, so a shim started another way leaks nothing.
  std::vector<std::string> env_storage = vm::child_env(environ);
  env_storage.insert(env_storage.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);
  int alive[2];
  if (::pipe2(alive, O_CLOEXEC) != 0) return errno_error("pipe for QEMU");
  UniqueFd alive_read(alive[0]);
  UniqueFd alive_write(alive[1]);
  pid_t pid = jail.namespaces != 0 ? jail::fork_into_namespaces(jail.namespaces) : ::fork();
  if (pid < 0) return errno_error(jail.namespaces != 0 ? "starting QEMU in new namespaces" : "fork for QEMU");
  if (pid == 0) {
    ::close(alive[1]);
    run_child(args.data(), envp.data(), inherit, output_fd, alive[0], jail);
  }
  QemuProcess q;
  q.pid_ = pid;
  q.alive_ = std::move(alive_write);
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

// Through the pidfd: it names this QEMU even if its pid were reused, and the
// shim's seccomp filter lets it signal nothing but what it holds a pidfd of.
void QemuProcess::signal(int sig) {
  if (!exited_ && pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0);
}

std::string QemuProcess::describe_exit() const {
  if (!exited_) return "still running";
  if (WIFEXITED(status_)) return "exited with status " + std::to_string(WEXITSTATUS(status_));
  if (WIFSIGNALED(status_)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(status_));
  return "ended";
}

}  // namespace moat::shim
