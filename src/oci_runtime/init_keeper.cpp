#include "oci_runtime/init_keeper.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "moat/sandbox.h"
#include "util/fd_passing.h"
#include "util/json_object.h"
#include "util/unique_fd.h"
#include "util/write_all.h"
#include "util/write_file_atomic.h"

extern char** environ;

namespace moat::oci {
namespace {

using nlohmann::json;

// Signals a keeper takes as the container's: every one a process can catch,
// except those that report the keeper's own faults.
sigset_t forwarded_signals() {
  sigset_t set;
  sigfillset(&set);
  for (int s : {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS}) sigdelset(&set, s);
  return set;
}

bool ends_a_process(int sig) {
  switch (sig) {
    case SIGCHLD: case SIGWINCH: case SIGURG: case SIGCONT: case SIGTSTP: case SIGTTIN: case SIGTTOU: case SIGPIPE:
      return false;
    default:
      return true;
  }
}

// Ends the keeper as `sig` would end a process, so the engine reports the
// container killed by it (128 + sig).
[[noreturn]] void die_by(int sig) {
  struct rlimit no_core {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::signal(sig, SIG_DFL);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, sig);
  ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);
}

void report(int ready_fd, const std::string& line) {
  if (ready_fd < 0) return;
  (void)write_all(ready_fd, line);
  ::close(ready_fd);
}

// Step 1: the engine's terminal. The slave becomes stdio and the controlling
// terminal of the keeper's new session (SIGWINCH then reaches the keeper on
// each resize of the master).
Status attach_console(const std::string& socket_path, std::uint16_t rows, std::uint16_t cols) {
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) return errno_error("open /dev/ptmx");
  if (::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) return errno_error("unlock pty");
  char name[128];
  if (::ptsname_r(master.get(), name, sizeof(name)) != 0) return errno_error("ptsname");
  if (::setsid() < 0) return errno_error("setsid");
  UniqueFd slave(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) return errno_error(std::string("open ") + name);
  if (::ioctl(slave.get(), TIOCSCTTY, 0) != 0) return errno_error("make the pty the controlling terminal");
  struct termios t {};
  if (::tcgetattr(slave.get(), &t) == 0) {
    ::cfmakeraw(&t);
    ::tcsetattr(slave.get(), TCSANOW, &t);
  }
  struct winsize ws {};
  ws.ws_row = rows;
  ws.ws_col = cols;
  ::ioctl(slave.get(), TIOCSWINSZ, &ws);

  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) return errno_error("console socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) return make_error("console socket path too long: " + socket_path, EINVAL);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size());
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return errno_error("connect to console socket " + socket_path);
  static const char kName[] = "/dev/ptmx";
  MOAT_TRY(send_with_fds(sock.get(), kName, sizeof(kName) - 1, {master.get()}));
  for (int fd = 0; fd <= 2; ++fd) {
    if (::dup2(slave.get(), fd) < 0) return errno_error("dup2 pty");
  }
  return ok_status();
}

// Step 3: until `start` writes to the fifo. A signal that ends a process
// ends the container that never ran.
Status wait_for_start(int fifo, int sigfd) {
  while (true) {
    pollfd p[2] = {{fifo, POLLIN, 0}, {sigfd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return errno_error("poll start fifo");
    }
    if (p[1].revents) {
      signalfd_siginfo si{};
      if (::read(sigfd, &si, sizeof(si)) == sizeof(si) && ends_a_process(static_cast<int>(si.ssi_signo)))
        die_by(static_cast<int>(si.ssi_signo));
    }
    if (p[0].revents) {
      char b;
      if (::read(fifo, &b, 1) == 1) return ok_status();
    }
  }
}

void mark_running(const std::string& marker) {
  if (!marker.empty()) (void)write_file_atomic(marker, "", 0600);
}

// A pod's sandbox container: waits for `start` (a signal before it ends the
// keeper as it would a process), then does what a pause process does:
// nothing, until TERM or INT end it with 0.
[[noreturn]] void hold_until_ended(int fifo, int sigfd, const std::string& running_marker) {
  if (fifo >= 0) {
    if (auto st = wait_for_start(fifo, sigfd); !st) {
      std::fprintf(stderr, "moat-runtime: %s\n", st.error().message.c_str());
      ::_exit(255);
    }
  }
  mark_running(running_marker);
  while (true) {
    signalfd_siginfo si{};
    ssize_t n = ::read(sigfd, &si, sizeof(si));
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof(si))) ::_exit(255);
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) ::_exit(0);
  }
}

// Step 4's input: stdin and signals, each on its own thread so a command that
// does not read its stdin never delays a signal.
void forward_stdin(Exec* exec) {
  std::string buf(64 * 1024, '\0');
  while (true) {
    ssize_t n = ::read(0, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      (void)exec->close_stdin();
      return;
    }
    if (!exec->write_stdin(std::string_view(buf.data(), static_cast<std::size_t>(n)))) return;
  }
}

void forward_signals(Exec* exec, int sigfd, bool tty) {
  while (true) {
    signalfd_siginfo si{};
    ssize_t n = ::read(sigfd, &si, sizeof(si));
    if (n < 0 && errno == EINTR) continue;
    if (n != sizeof(si)) return;
    int sig = static_cast<int>(si.ssi_signo);
    if (sig == SIGWINCH) {
      struct winsize ws {};
      if (tty && ::ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) (void)exec->resize(ws.ws_row, ws.ws_col);
      continue;
    }
    if (sig == SIGCHLD || sig == SIGPIPE) continue;
    (void)exec->signal(sig);
  }
}

void write_out(int fd, std::string_view s) {
  // A reader that went away loses the rest; the command runs on.
  (void)write_all(fd, s);
}

}  // namespace

std::string keeper_spec_json(const KeeperSpec& s) {
  json rl = json::object();
  for (const auto& [k, v] : s.process.rlimits) rl[k] = {v.soft, v.hard};
  json j = {{"sandbox", s.sandbox},
            {"argv", s.process.argv},
            {"env", s.process.env},
            {"cwd", s.process.cwd},
            {"user", s.process.user},
            {"tty", s.process.tty},
            {"rows", s.process.rows},
            {"cols", s.process.cols},
            {"rlimits", rl},
            {"caps", s.process.capabilities ? json::array({s.process.capabilities->bounding, s.process.capabilities->effective,
                                                           s.process.capabilities->permitted, s.process.capabilities->inheritable,
                                                           s.process.capabilities->ambient})
                                            : json()},
            {"noNewPrivileges", s.process.no_new_privileges},
            {"waitForStart", s.wait_for_start},
            {"startFifo", s.start_fifo},
            {"runningMarker", s.running_marker},
            {"stopSandboxOnExit", s.stop_sandbox_on_exit},
            {"consoleSocket", s.console_socket}};
  return j.dump();
}

Result<KeeperSpec> parse_keeper_spec(const std::string& text) {
  MOAT_ASSIGN_OR_RETURN(auto j, parse_json_object(text, "keeper spec", 8u << 20));
  KeeperSpec s;
  try {
    s.sandbox = j.at("sandbox").get<std::string>();
    s.process.argv = j.at("argv").get<std::vector<std::string>>();
    s.process.env = j.at("env").get<std::vector<std::string>>();
    s.process.cwd = j.at("cwd").get<std::string>();
    s.process.user = j.at("user").get<std::string>();
    s.process.tty = j.at("tty").get<bool>();
    s.process.rows = j.at("rows").get<std::uint16_t>();
    s.process.cols = j.at("cols").get<std::uint16_t>();
    for (const auto& [k, v] : j.at("rlimits").items()) s.process.rlimits[k] = {v.at(0).get<std::uint64_t>(), v.at(1).get<std::uint64_t>()};
    if (auto caps = j.find("caps"); caps != j.end() && !caps->is_null()) {
      auto v = caps->get<std::vector<std::uint64_t>>();
      if (v.size() != 5) return make_error("keeper spec: caps must be five masks", EINVAL);
      s.process.capabilities = CapabilitySets{v[0], v[1], v[2], v[3], v[4]};
    }
    s.process.no_new_privileges = j.value("noNewPrivileges", false);
    s.wait_for_start = j.at("waitForStart").get<bool>();
    s.start_fifo = j.at("startFifo").get<std::string>();
    s.running_marker = j.value("runningMarker", std::string());
    s.stop_sandbox_on_exit = j.at("stopSandboxOnExit").get<bool>();
    s.console_socket = j.at("consoleSocket").get<std::string>();
  } catch (const json::exception& e) {
    return make_error(std::string("keeper spec: ") + e.what(), EINVAL);
  }
  s.process.stdin_open = true;
  return s;
}

int run_keeper(const KeeperSpec& spec, int ready_fd) {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set = forwarded_signals();
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  UniqueFd sigfd(::signalfd(-1, &set, SFD_CLOEXEC));
  auto fail = [&](const Error& e) {
    report(ready_fd, "error: " + e.message + "\n");
    return 1;
  };
  if (!sigfd) return fail(errno_error("signalfd"));
  if (!spec.console_socket.empty()) {
    if (auto st = attach_console(spec.console_socket, spec.process.rows, spec.process.cols); !st) return fail(st.error());
  } else {
    ::setsid();  // a Ctrl-C at the terminal that ran `create` is not the container's
  }
  UniqueFd fifo;
  if (spec.wait_for_start) {
    // Read-write: the open never blocks, and the keeper's own write end
    // keeps the fifo from reading as closed before `start` opens it.
    fifo = UniqueFd(::open(spec.start_fifo.c_str(), O_RDWR | O_CLOEXEC));
    if (!fifo) return fail(errno_error("open " + spec.start_fifo));
  }
  if (spec.sandbox.empty()) {
    report(ready_fd, "ok\n");
    hold_until_ended(fifo.get(), sigfd.get(), spec.running_marker);
  }
  auto sandbox = Sandbox::open(spec.sandbox);
  if (!sandbox) return fail(sandbox.error());
  report(ready_fd, "ok\n");

  if (spec.wait_for_start) {
    if (auto st = wait_for_start(fifo.get(), sigfd.get()); !st) {
      std::fprintf(stderr, "moat-runtime: %s\n", st.error().message.c_str());
      return 255;
    }
    fifo.reset();
  }
  ExecOptions process = spec.process;
  if (process.tty) {
    // The engine sized the terminal while the keeper waited (that SIGWINCH
    // went by): start at its size now.
    struct winsize ws {};
    if (::ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
      process.rows = ws.ws_row;
      process.cols = ws.ws_col;
    }
  }
  ExecCallbacks cb;
  cb.on_stdout = [](std::string_view s) { write_out(1, s); };
  cb.on_stderr = [tty = spec.process.tty](std::string_view s) { write_out(tty ? 1 : 2, s); };
  auto exec = sandbox->start_exec(process, cb);
  if (!exec) {
    std::fprintf(stderr, "moat-runtime: %s\n", exec.error().message.c_str());
    if (spec.stop_sandbox_on_exit) (void)sandbox->stop(std::chrono::seconds(0));
    return 127;
  }
  mark_running(spec.running_marker);
  Exec* e = &*exec;
  // Detached: both block in read() and end with the process.
  std::thread(forward_stdin, e).detach();
  std::thread(forward_signals, e, sigfd.get(), spec.process.tty).detach();
  auto waited = exec->wait();
  // As when a container's init ends under runc, whatever else runs in it is
  // killed at once: no clean power-off (the guest's files on the engine's
  // directories are flushed first; Sandbox::stop with no grace).
  if (spec.stop_sandbox_on_exit) (void)sandbox->stop(std::chrono::seconds(0));
  if (!waited || !*waited) {
    std::fprintf(stderr, "moat-runtime: %s\n", waited ? "the command's status was lost" : waited.error().message.c_str());
    ::_exit(255);
  }
  const ExitStatus& st = **waited;
  if (st.signal) die_by(st.signal);
  ::_exit(st.code & 0xff);
}

Result<pid_t> spawn_keeper(const std::string& self, const std::string& root, const std::string& spec_path) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return errno_error("pipe");
  UniqueFd ready_r(pipefd[0]), ready_w(pipefd[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, ready_w.get(), 3);
  std::vector<std::string> args = {"moat-runtime", "--root", root, "keep", "--spec", spec_path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, self.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return make_error("start keeper " + self + ": " + std::strerror(rc), rc);
  ready_w.reset();
  std::string answer;
  char buf[512];
  while (answer.size() < 4096) {
    ssize_t n = ::read(ready_r.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  if (answer == "ok\n") return pid;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  if (answer.rfind("error: ", 0) == 0) {
    while (!answer.empty() && answer.back() == '\n') answer.pop_back();
    return make_error(answer.substr(7), EIO);
  }
  return make_error("the keeper ended before it was ready", EIO);
}

}  // namespace moat::oci
