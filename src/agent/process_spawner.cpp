#include "agent/process_spawner.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

namespace moat::agent {
namespace {

const std::map<std::string, int>& rlimit_names() {
  static const std::map<std::string, int> names = {
      {"as", RLIMIT_AS},         {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},
      {"data", RLIMIT_DATA},     {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},
      {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
      {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},
      {"rtprio", RLIMIT_RTPRIO}, {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
  };
  return names;
}

// Only async-signal-safe calls below this point run in the child.
[[noreturn]] void child_fail(const char* what, const char* arg, int err, int code) {
  char buf[512];
  std::size_t n = 0;
  auto put = [&](const char* s) {
    while (*s && n < sizeof(buf) - 2) buf[n++] = *s++;
  };
  put("moat: ");
  put(what);
  put(" \"");
  put(arg);
  put("\": ");
  put(err == ENOENT && code == 127 ? "command not found" : strerror(err));
  buf[n++] = '\n';
  ssize_t w = ::write(2, buf, n);
  (void)w;
  ::_exit(code);
}

struct ChildPlan {
  const proto::ExecRequest* req;
  const Credentials* cred;
  char** argv;
  char** envp;
  std::vector<std::string> candidates;  // where execve looks for argv[0], in order
  std::vector<std::pair<int, struct rlimit>> rlimits;
  int stdin_fd, stdout_fd, stderr_fd;   // child ends
  bool tty;
};

// Effective, permitted and inheritable by capset(2) (version 3: two 32-bit
// words per set), then each ambient capability raised (it must be permitted
// and inheritable by then). Raw system calls: this runs in the vfork child.
void apply_capability_sets(const proto::ExecRequest& req, const char* who) {
  struct __user_cap_header_struct header {};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  struct __user_cap_data_struct data[2] {};
  for (int i = 0; i < 2; ++i) {
    data[i].effective = static_cast<std::uint32_t>(req.cap_effective >> (32 * i));
    data[i].permitted = static_cast<std::uint32_t>(req.cap_permitted >> (32 * i));
    data[i].inheritable = static_cast<std::uint32_t>(req.cap_inheritable >> (32 * i));
  }
  if (::syscall(SYS_capset, &header, data) != 0) child_fail("capabilities for", who, errno, 126);
  for (int cap = 0; cap < 64; ++cap) {
    if (!(req.cap_ambient & (1ull << cap))) continue;
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) child_fail("ambient capabilities for", who, errno, 126);
  }
}

// Runs in a vfork()ed child: it shares the agent's memory until execve, so
// it only makes system calls (raw ones where glibc would keep state) and
// touches nothing the parent owns. Under TCG, vfork saves the page-table copy
// and copy-on-write faults that dominate a fork of the agent.
[[noreturn]] void run_child(const ChildPlan& plan) {
  sigset_t all;
  sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  ::setsid();
  if (plan.tty) ::ioctl(plan.stdout_fd, TIOCSCTTY, 0);
  ::dup2(plan.stdin_fd, 0);
  ::dup2(plan.stdout_fd, 1);
  ::dup2(plan.stderr_fd, 2);
  ::syscall(SYS_close_range, 3u, ~0u, 0u);
  for (const auto& [resource, rl] : plan.rlimits)
    if (::setrlimit(resource, &rl) != 0) child_fail("setrlimit for", plan.argv[0], errno, 126);
  const char* who = plan.req->user.c_str();
  const proto::ExecRequest& req = *plan.req;
  if (req.has_capabilities) {
    // The bounding set is cut while the process still has CAP_SETPCAP; the
    // other sets survive the user change because of KEEPCAPS.
    for (int cap = 0; cap < 64; ++cap) {
      if (req.cap_bounding & (1ull << cap)) continue;
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) child_fail("capabilities for", who, errno, 126);
    }
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) child_fail("capabilities for", who, errno, 126);
  }
  if (::syscall(SYS_setgroups, plan.cred->groups.size(), plan.cred->groups.data()) != 0)
    child_fail("setgroups for", who, errno, 126);
  if (::syscall(SYS_setresgid, plan.cred->gid, plan.cred->gid, plan.cred->gid) != 0)
    child_fail("setgid for", who, errno, 126);
  if (::syscall(SYS_setresuid, plan.cred->uid, plan.cred->uid, plan.cred->uid) != 0)
    child_fail("setuid for", who, errno, 126);
  if (req.has_capabilities) apply_capability_sets(req, who);
  if (req.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    child_fail("no_new_privs for", who, errno, 126);
  const char* cwd = plan.req->cwd.empty() ? "/" : plan.req->cwd.c_str();
  if (::chdir(cwd) != 0) child_fail("working directory", cwd, errno, 126);
  // As execvp: the first candidate that runs wins; EACCES is remembered
  // over ENOENT so "permission denied" is what gets reported.
  int err = ENOENT;
  for (const auto& path : plan.candidates) {
    ::execve(path.c_str(), plan.argv, plan.envp);
    if (errno == EACCES) err = EACCES;
    else if (err != EACCES && errno != ENOENT && errno != ENOTDIR) err = errno;
  }
  child_fail("exec", plan.argv[0], err, (err == ENOENT || err == ENOTDIR) ? 127 : 126);
}

// The paths execve tries for argv[0], searched in the command's own PATH.
std::vector<std::string> exec_candidates(const std::string& file, const std::vector<std::string>& env) {
  if (file.find('/') != std::string::npos) return {file};
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& e : env)
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    out.push_back((dir.empty() ? "." : dir) + "/" + file);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

constexpr int kOutputPipeSize = 1 << 20;

Status make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_error("pipe");
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  return ok_status();
}

Status set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return errno_error("fcntl O_NONBLOCK");
  return ok_status();
}

}  // namespace

std::vector<std::string> build_environment(const proto::ExecRequest& req, const Credentials& cred) {
  std::vector<std::pair<std::string, std::string>> env = {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", cred.home},
  };
  char host[65] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) env.emplace_back("HOSTNAME", host);
  if (req.tty) env.emplace_back("TERM", "xterm");
  for (const auto& entry : req.env) {
    auto eq = entry.find('=');
    std::string key = entry.substr(0, eq);
    std::string value = entry.substr(eq + 1);
    bool replaced = false;
    for (auto& kv : env) {
      if (kv.first == key) {
        kv.second = value;
        replaced = true;
      }
    }
    if (!replaced) env.emplace_back(key, value);
  }
  std::vector<std::string> out;
  for (auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

Result<SpawnedProcess> spawn_process(const proto::ExecRequest& req, const Credentials& cred) {
  SpawnedProcess proc;
  UniqueFd child_in, child_out, child_err;
  if (req.tty) {
    UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master) return errno_error("open pty master");
    if (::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) return errno_error("unlock pty");
    char name[64];
    if (::ptsname_r(master.get(), name, sizeof(name)) != 0) return errno_error("ptsname");
    UniqueFd slave(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!slave) return errno_error(std::string("open ") + name);
    struct winsize ws {};
    ws.ws_row = req.rows;
    ws.ws_col = req.cols;
    ::ioctl(slave.get(), TIOCSWINSZ, &ws);
    child_in.reset(::dup(slave.get()));
    child_err.reset(::dup(slave.get()));
    child_out = std::move(slave);
    proc.master_fd = std::move(master);
    proc.stdout_fd.reset(::fcntl(proc.master_fd.get(), F_DUPFD_CLOEXEC, 0));
    MOAT_TRY(set_nonblocking(proc.master_fd.get()));
  } else {
    MOAT_TRY(make_pipe(proc.stdout_fd, child_out));
    MOAT_TRY(make_pipe(proc.stderr_fd, child_err));
    // A command writing a lot runs further ahead of the agent before the
    // pipe fills, so each wake-up of the agent carries more (exec stdout of
    // 64 MiB: median 497 vs 530 ms). Pages are taken only as they fill.
    (void)::fcntl(proc.stdout_fd.get(), F_SETPIPE_SZ, kOutputPipeSize);
    (void)::fcntl(proc.stderr_fd.get(), F_SETPIPE_SZ, kOutputPipeSize);
    if (req.stdin_open) {
      MOAT_TRY(make_pipe(child_in, proc.stdin_fd));
      MOAT_TRY(set_nonblocking(proc.stdin_fd.get()));
    } else {
      child_in.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      if (!child_in) return errno_error("open /dev/null");
    }
    MOAT_TRY(set_nonblocking(proc.stdout_fd.get()));
    MOAT_TRY(set_nonblocking(proc.stderr_fd.get()));
  }

  std::vector<std::string> argv_store = req.argv;
  std::vector<std::string> env_store = build_environment(req, cred);
  auto argv = c_strings(argv_store);
  auto envp = c_strings(env_store);
  ChildPlan plan{&req, &cred, argv.data(), envp.data(), exec_candidates(req.argv[0], env_store), {},
                 child_in.get(), child_out.get(), child_err.get(), req.tty};
  for (const auto& [name, lim] : req.rlimits) {
    auto it = rlimit_names().find(name);
    if (it == rlimit_names().end()) return make_error("unknown rlimit \"" + name + "\"");
    plan.rlimits.push_back({it->second, rlimit{lim.soft, lim.hard}});
  }
  pid_t pid = ::vfork();
  if (pid < 0) return errno_error("vfork");
  if (pid == 0) run_child(plan);
  proc.pid = pid;
  return proc;
}

}  // namespace moat::agent
