#include "cli/exec_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <thread>

#include "cli/terminal.h"

namespace moat::cli {
namespace {

// Writes all of `data` and flushes it, so the command's output is never held
// back; false if the reader is gone (EPIPE). Other errors drop the rest, as
// there is nowhere to report them.
bool write_unless_broken(std::FILE* f, std::string_view data) {
  errno = 0;
  bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size() && std::fflush(f) == 0;
  return ok || errno != EPIPE;
}

// The command's stdout and stderr, as a shell pipeline treats them: when the
// reader of either goes away (`moat exec s -- yes | head -1`), the command
// gets SIGPIPE in the guest, what it still writes is dropped, and the CLI
// exits 141 (128 + SIGPIPE) as if SIGPIPE had ended it too. A command that
// ignores SIGPIPE and keeps writing is killed once it writes again after
// kPipeGrace, so it cannot spin forever on output nobody reads.
class OutputSink {
 public:
  explicit OutputSink(SignalForwarder& signals) : signals_(signals) {}

  void write(std::FILE* f, std::string_view data) {
    if (broken_) return escalate();
    if (write_unless_broken(f, data)) return;
    broken_ = true;
    broken_at_ = Clock::now();
    signals_.inject(SIGPIPE);
  }

  bool broken() const { return broken_; }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kPipeGrace{1};

  void escalate() {
    if (killed_ || Clock::now() - broken_at_ < kPipeGrace) return;
    killed_ = true;
    signals_.inject(SIGKILL);
  }

  SignalForwarder& signals_;
  bool broken_ = false;
  bool killed_ = false;
  Clock::time_point broken_at_;
};

// "nofile=1024" or "nofile=1024:2048"; "unlimited" is accepted for either.
Result<std::pair<std::string, Rlimit>> parse_ulimit(const std::string& spec) {
  static const char* kNames[] = {"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue",
                                 "nice", "nofile", "nproc", "rss", "rtprio", "sigpending", "stack"};
  auto bad = [&] { return make_error("--ulimit " + spec + ": expected NAME=SOFT[:HARD]"); };
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) return bad();
  std::string name = spec.substr(0, eq);
  bool known = false;
  for (const char* n : kNames) known |= name == n;
  if (!known) return make_error("--ulimit " + spec + ": unknown limit \"" + name + "\"");
  auto number = [](const std::string& s) -> std::optional<std::uint64_t> {
    if (s == "unlimited") return ~0ull;
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoull(s);
  };
  std::string values = spec.substr(eq + 1);
  auto colon = values.find(':');
  auto soft = number(values.substr(0, colon));
  auto hard = colon == std::string::npos ? soft : number(values.substr(colon + 1));
  if (!soft || !hard) return bad();
  if (*soft > *hard) return make_error("--ulimit " + spec + ": soft limit above hard limit");
  return std::make_pair(name, Rlimit{*soft, *hard});
}

// A double as the user would write it: "31536000", "-1", "0.5", "1e+300", "nan".
std::string number_text(double v) {
  char buf[64];
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  else
    std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

}  // namespace

Result<Duration> seconds_flag(const std::string& flag, double seconds, double min_s, double max_s) {
  if (!(seconds >= min_s && seconds <= max_s))  // also false for NaN
    return make_error(flag + " " + number_text(seconds) + ": expected a number of seconds from " + number_text(min_s) +
                          " to " + number_text(max_s),
                      EINVAL);
  return Duration(static_cast<Duration::rep>(std::ceil(seconds * 1000.0)));
}

void print_error(const std::string& message) { std::fprintf(stderr, "moat: %s\n", message.c_str()); }

int fail(const Error& e) {
  print_error(e.message);
  return kExitMoatError;
}

Result<ExecOptions> exec_options_from(const ExecFlags& f) {
  ExecOptions o;
  if (f.command.empty()) return make_error("no command given (put it after --)");
  o.argv = f.command;
  for (const auto& e : f.env) {
    auto eq = e.find('=');
    if (eq == 0 || e.empty()) return make_error("-e " + e + ": expected KEY=VALUE");
    if (eq == std::string::npos) {
      // Docker's -e KEY: pass the caller's value through, if it has one.
      if (const char* v = std::getenv(e.c_str())) o.env.push_back(e + "=" + v);
      continue;
    }
    o.env.push_back(e);
  }
  if (!f.workdir.empty() && f.workdir[0] != '/') return make_error("-w " + f.workdir + ": must be an absolute path");
  o.cwd = f.workdir;
  o.user = f.user;
  o.tty = f.tty;
  o.stdin_open = f.interactive;
  MOAT_ASSIGN_OR_RETURN(o.timeout, seconds_flag("--timeout", f.timeout_s, 0, kMaxCommandTimeoutS));
  for (const auto& u : f.ulimits) {
    MOAT_ASSIGN_OR_RETURN(auto lim, parse_ulimit(u));
    o.rlimits[lim.first] = lim.second;
  }
  MOAT_TRY(check_exec_options(o));
  if (f.tty) {
    auto [rows, cols] = window_size(::isatty(1) ? 1 : 0);
    o.rows = rows;
    o.cols = cols;
  }
  return o;
}

namespace {

// The CLI's input to a running command, each on its own thread so a command
// that does not read its stdin never delays a Ctrl-C: forwarded signals and
// resizes (from the SignalForwarder's pipe) and, with -i, our stdin. Both
// stop when destroyed.
class InputThreads {
 public:
  InputThreads(Exec& exec, int signal_fd, bool forward_stdin) : exec_(exec) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) == 0) {
      stop_read_ = fds[0];
      stop_write_ = fds[1];
    }
    signals_ = std::thread([this, signal_fd] { forward_signals(signal_fd); });
    if (forward_stdin) stdin_ = std::thread([this] { forward_stdin_fd(0); });
  }
  ~InputThreads() {
    ::close(stop_write_);  // POLLHUP on the read end wakes both threads
    if (signals_.joinable()) signals_.join();
    if (stdin_.joinable()) stdin_.join();
    ::close(stop_read_);
  }

 private:
  // Waits for `fd` or the stop pipe; false once stopping.
  bool wait_readable(int fd) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_read_, POLLIN, 0}};
    while (::poll(p, 2, -1) < 0) {
      if (errno != EINTR) return false;
    }
    return p[1].revents == 0;
  }

  void forward_signals(int fd) {
    bool interrupted = false;
    while (wait_readable(fd)) {
      unsigned char ev[64];
      ssize_t n = ::read(fd, ev, sizeof(ev));
      for (ssize_t i = 0; i < n; ++i) {
        int sig = ev[i];
        if (sig == 0) {
          auto [rows, cols] = window_size(::isatty(1) ? 1 : 0);
          (void)exec_.resize(rows, cols);
        } else if (interrupted && (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)) {
          // A second interrupt: stop waiting for a command that does not end.
          exec_.cancel();
        } else {
          interrupted |= sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGKILL;
          (void)exec_.signal(sig);
        }
      }
    }
  }

  void forward_stdin_fd(int fd) {
    std::string buf(64 * 1024, '\0');
    while (wait_readable(fd)) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        (void)exec_.close_stdin();
        return;
      }
      if (!exec_.write_stdin(std::string_view(buf.data(), static_cast<std::size_t>(n)))) return;
    }
  }

  Exec& exec_;
  int stop_read_ = -1, stop_write_ = -1;
  std::thread signals_, stdin_;
};

}  // namespace

int run_in_sandbox(Sandbox& sandbox, const ExecFlags& flags) {
  auto opts = exec_options_from(flags);
  if (!opts) {
    print_error(opts.error().message);
    return kExitMoatError;
  }
  ::signal(SIGPIPE, SIG_IGN);
  SignalForwarder signals;
  std::optional<RawTerminal> raw;
  if (flags.tty && flags.interactive && ::isatty(0)) raw.emplace(0);

  OutputSink output(signals);
  ExecCallbacks cb;
  cb.on_stdout = [&output](std::string_view s) { output.write(stdout, s); };
  cb.on_stderr = [&output](std::string_view s) { output.write(stderr, s); };
  auto exec = sandbox.start_exec(*opts, cb);
  if (!exec) {
    print_error(exec.error().message);
    return kExitMoatError;
  }
  Result<std::optional<ExitStatus>> waited = std::optional<ExitStatus>();
  {
    InputThreads input(*exec, signals.fd(), flags.interactive);
    waited = exec->wait();
  }
  raw.reset();
  Result<ExitStatus> st = waited ? Result<ExitStatus>(**waited) : Result<ExitStatus>(waited.error());
  if (!st) {
    print_error(st.error().message);
    // The host's own clocks: a guest that never reported the timeout or the
    // signal still ends the CLI the way the command would have.
    if (st.error().code == ETIMEDOUT && opts->timeout > Duration::zero()) return kExitTimedOut;
    if (st.error().code == EINTR && SignalForwarder::last_interrupt()) return 128 + SignalForwarder::last_interrupt();
    return kExitMoatError;
  }
  if (output.broken()) return 128 + SIGPIPE;
  if (st->timed_out) {
    print_error("command timed out after " + std::to_string(static_cast<double>(opts->timeout.count()) / 1000.0).substr(0, 6) + " s and was killed");
    return kExitTimedOut;
  }
  return st->shell_code();
}

}  // namespace moat::cli
