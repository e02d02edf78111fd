#include "shim/volume_servers.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "jail/namespaces.h"
#include "shim/volume_server_process.h"
#include "shim_contract/sandbox_layout.h"

namespace moat::shim {

namespace {

// Descriptors a server keeps for itself (its socket, eventfds, the guest's
// memory regions) beyond those its nodes and open files hold.
constexpr rlim_t kReservedFds = 128;

// How long a server gets to notice QEMU hung up before it is killed.
constexpr int kServerExitGraceMs = 1000;

// How many host files one server may hold open: the descriptor limit,
// raised to its hard maximum first (the servers inherit it), less the
// server's own reserve; half for the nodes the guest's kernel remembers and
// half for the files it holds open. Past it a server closes the
// descriptors of its least recently used nodes and reopens them when the
// guest comes back to them (fs/node_table.h).
std::uint64_t open_files_per_server() {
  struct rlimit lim {};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 512;
  if (lim.rlim_cur < lim.rlim_max) {
    struct rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  rlim_t usable = lim.rlim_cur == RLIM_INFINITY ? (rlim_t{1} << 20) : lim.rlim_cur;
  rlim_t budget = usable > 2 * kReservedFds ? usable - kReservedFds : usable / 2;
  return std::max<std::uint64_t>(budget / 2, 16);
}

Result<std::string> own_binary() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return errno_error("readlink /proc/self/exe");
  return std::string(buf, static_cast<std::size_t>(n));
}

// fork (into fresh namespaces when `namespaces` is set) and exec `argv`
// with `socket` at kVolumeServerSocketFd, stderr kept, nothing else.
Result<pid_t> spawn_server(const std::vector<std::string>& argv, int socket, int namespaces) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  char* envp[] = {nullptr};
  pid_t pid = namespaces != 0 ? jail::fork_into_namespaces(namespaces) : ::fork();
  if (pid < 0) return errno_error("starting a volume server");
  if (pid == 0) {
    // Only raw, async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (socket == kVolumeServerSocketFd) {
      ::fcntl(socket, F_SETFD, 0);
    } else if (::dup2(socket, kVolumeServerSocketFd) < 0) {
      ::_exit(127);
    }
    ::syscall(SYS_close_range, kVolumeServerSocketFd + 1, ~0U, 0);
    ::execve(args[0], args.data(), envp);
    ::_exit(127);
  }
  return pid;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + ::strsignal(WTERMSIG(status));
  return "ended";
}

}  // namespace

Result<std::unique_ptr<VolumeServers>> VolumeServers::start(const std::vector<VolumeShare>& volumes,
                                                            const std::string& sandbox_dir,
                                                            std::vector<QemuEnd>& qemu_ends, Logger log) {
  std::unique_ptr<VolumeServers> servers(new VolumeServers());
  servers->log_ = std::move(log);
  if (volumes.empty()) return servers;
  MOAT_ASSIGN_OR_RETURN(std::string binary, own_binary());
  bool as_root = ::geteuid() == 0;
  std::string mount_point;
  if (as_root) {
    mount_point = volume_root_path(sandbox_dir);
    if (::mkdir(mount_point.c_str(), 0700) != 0 && errno != EEXIST) return errno_error("mkdir " + mount_point);
    servers->confinement_ =
        "volume servers run as processes of their own, in their own namespaces and root, with no capability but "
        "CAP_DAC_OVERRIDE and CAP_FOWNER, under a seccomp filter";
  } else {
    servers->confinement_ =
        "volume servers run as processes of their own under a seccomp filter, in the shim's namespaces (not root)";
  }
  std::uint64_t max_open = open_files_per_server();
  for (const auto& share : volumes) {
    VolumeServerArgs args;
    args.host_path = share.host_path;
    args.read_only = share.read_only;
    args.size_bytes = share.size_bytes;
    args.max_open = max_open;
    args.root_mount_point = mount_point;
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
      return errno_error("socketpair for volume " + share.host_path);
    UniqueFd server_end(pair[0]);
    UniqueFd qemu_end(pair[1]);
    MOAT_ASSIGN_OR_RETURN(pid_t pid, spawn_server(args.to_argv(binary), server_end.get(),
                                                   as_root ? jail::kVolumeServerNamespaces : 0));
    Server s;
    s.host_path = share.host_path;
    s.pid = pid;
    s.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    servers->servers_.push_back(std::move(s));
    if (!servers->servers_.back().pidfd) return errno_error("pidfd_open of the server of volume " + share.host_path);
    qemu_ends.push_back({share.tag, std::move(qemu_end)});
  }
  return servers;
}

VolumeServers::~VolumeServers() {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kServerExitGraceMs);
  for (auto& s : servers_) {
    if (s.pidfd) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      struct pollfd p {s.pidfd.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 0))) != 1)
        ::syscall(SYS_pidfd_send_signal, s.pidfd.get(), SIGKILL, nullptr, 0);
    }
    int status = 0;
    if (::waitpid(s.pid, &status, 0) != s.pid) continue;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!clean && log_) log_("the server of volume " + s.host_path + " " + describe_status(status));
  }
}

}  // namespace moat::shim
