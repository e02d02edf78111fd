#include "sandbox/exec_client.h"

#include <poll.h>
#include <unistd.h>

#include <signal.h>
#include <string.h>

#include <cerrno>
#include <chrono>

#include "proto/exec.h"

namespace moat::sandbox {
namespace {

// Output is acknowledged in batches of this size (a quarter of the window,
// so the agent never stalls waiting for a grant while data is in flight).
constexpr std::uint64_t kGrantBatch = proto::kInitialWindow / 4;

// The agent enforces a command's timeout; the host gives it this long on top
// to report the kill before it stops waiting for a guest that does not answer.
constexpr std::chrono::seconds kTimeoutGrace{5};
// After a signal that ends a command (SIGINT, SIGTERM, SIGHUP, SIGKILL), a
// guest that sends nothing for this long is not waited for any more. A
// second SIGINT, SIGTERM or SIGHUP stops waiting at once.
constexpr std::chrono::seconds kInterruptGrace{10};

bool ends_command(int sig) { return sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGKILL; }
bool is_repeatable_interrupt(int sig) { return sig == SIGINT || sig == SIGTERM || sig == SIGHUP; }

// 2000 → "2", 1500 → "1.5", 1 → "0.001".
std::string seconds_text(std::uint64_t ms) {
  std::string s = std::to_string(ms / 1000);
  if (ms % 1000 == 0) return s;
  std::string frac = std::to_string(1000 + ms % 1000).substr(1);
  while (frac.back() == '0') frac.pop_back();
  return s + "." + frac;
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

class ExecStream {
 public:
  ExecStream(AgentConnection& conn, const ExecOptions& opts, ExecIo& io)
      : conn_(conn), opts_(opts), io_(io), stream_(conn.next_stream()) {
    stdin_done_ = !opts.stdin_open;
  }

  Result<ExitStatus> run() {
    if (opts_.timeout_ms > 0)
      timeout_at_ = Clock::now() + std::chrono::milliseconds(opts_.timeout_ms) + kTimeoutGrace;
    MOAT_TRY(conn_.send(proto::make_message(stream_, proto::msg::kExec, proto::to_payload(to_request(opts_)))));
    if (opts_.stdin_open && io_.stdin_fd < 0) {
      MOAT_TRY(close_stdin());
    }
    while (true) {
      // Handle everything already decoded before sleeping.
      while (true) {
        MOAT_ASSIGN_OR_RETURN(auto m, conn_.buffered());
        if (!m) break;
        MOAT_TRY(handle(*m));
        if (status_) return *status_;
      }
      MOAT_TRY(give_up_if_due());
      MOAT_TRY(wait_and_pump());
    }
  }

 private:
  Status close_stdin() {
    stdin_done_ = true;
    return conn_.send(proto::make_message(stream_, proto::msg::kStdinClose));
  }

  using Clock = std::chrono::steady_clock;

  // The guest may never answer (a wedged agent): the host keeps its own
  // clocks. Returning ends the connection, which cancels the stream.
  Status give_up_if_due() {
    auto now = Clock::now();
    if (timeout_at_ && now >= *timeout_at_)
      return make_error(opts_.argv[0] + " did not end within its timeout of " +
                            seconds_text(opts_.timeout_ms) +
                            " s and the sandbox did not report it killed; it was cancelled",
                        ETIMEDOUT);
    if (interrupted_at_ && now >= *interrupted_at_ + kInterruptGrace) return interrupted();
    return ok_status();
  }

  Error interrupted() const {
    return make_error(opts_.argv[0] + " did not end after " + signal_name(interrupt_signal_) +
                          "; it was cancelled and may still be ending in the sandbox",
                      EINTR);
  }

  // Milliseconds poll may sleep before a clock of give_up_if_due() is due.
  int poll_timeout_ms() const {
    std::optional<Clock::time_point> due = timeout_at_;
    if (interrupted_at_ && (!due || *interrupted_at_ + kInterruptGrace < *due)) due = *interrupted_at_ + kInterruptGrace;
    if (!due) return -1;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*due - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left + 1, 1 << 30));
  }

  Status wait_and_pump() {
    pollfd fds[3];
    nfds_t n = 0;
    fds[n++] = {conn_.fd(), POLLIN, 0};
    int stdin_slot = -1, event_slot = -1;
    if (!stdin_done_ && started_ && stdin_credit_ > 0 && io_.stdin_fd >= 0) {
      stdin_slot = static_cast<int>(n);
      fds[n++] = {io_.stdin_fd, POLLIN, 0};
    }
    if (io_.event_fd >= 0) {
      event_slot = static_cast<int>(n);
      fds[n++] = {io_.event_fd, POLLIN, 0};
    }
    int r = ::poll(fds, n, poll_timeout_ms());
    if (r < 0) {
      if (errno == EINTR) return ok_status();
      return errno_error("poll");
    }
    if (event_slot >= 0 && (fds[event_slot].revents & POLLIN)) MOAT_TRY(forward_events());
    if (stdin_slot >= 0 && (fds[stdin_slot].revents & (POLLIN | POLLHUP | POLLERR))) MOAT_TRY(forward_stdin());
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      auto st = conn_.pump();
      if (!st) return st.error().wrap("while running " + opts_.argv[0]);
    }
    return ok_status();
  }

  Status forward_events() {
    unsigned char ev[64];
    ssize_t n = ::read(io_.event_fd, ev, sizeof(ev));
    for (ssize_t i = 0; i < n; ++i) {
      if (ev[i] == 0) {
        if (!io_.on_resize) continue;
        auto [rows, cols] = io_.on_resize();
        proto::Json p = {{"rows", rows}, {"cols", cols}};
        MOAT_TRY(conn_.send(proto::make_message(stream_, proto::msg::kResize, p)));
      } else {
        int sig = ev[i];
        if (interrupted_at_ && is_repeatable_interrupt(sig)) {
          interrupt_signal_ = sig;
          return interrupted();
        }
        if (ends_command(sig) && !interrupted_at_) {
          interrupted_at_ = Clock::now();
          interrupt_signal_ = sig;
        }
        proto::Json p = {{"sig", sig}};
        MOAT_TRY(conn_.send(proto::make_message(stream_, proto::msg::kSignal, p)));
      }
    }
    return ok_status();
  }

  Status forward_stdin() {
    std::size_t want = std::min<std::uint64_t>(stdin_credit_, proto::kMaxDataChunk);
    std::string buf(want, '\0');
    ssize_t n = ::read(io_.stdin_fd, buf.data(), want);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return ok_status();
    if (n <= 0) return close_stdin();
    buf.resize(static_cast<std::size_t>(n));
    stdin_credit_ -= static_cast<std::uint64_t>(n);
    return conn_.send(proto::make_data_message(stream_, proto::msg::kStdin, buf));
  }

  Status grant(std::uint64_t n) {
    ungranted_ += n;
    if (ungranted_ < kGrantBatch) return ok_status();
    proto::Json p = {{"n", ungranted_}};
    ungranted_ = 0;
    return conn_.send(proto::make_message(stream_, proto::msg::kWindow, p));
  }

  Status handle(const proto::Message& m) {
    if (m.stream != stream_) return ok_status();  // not ours (e.g. a late frame)
    // The guest answers: a command still talking after a signal is given
    // its grace again (a second signal still ends the wait).
    if (interrupted_at_) interrupted_at_ = Clock::now();
    const std::string& t = m.type;
    if (t == proto::msg::kStdout || t == proto::msg::kStderr) {
      MOAT_ASSIGN_OR_RETURN(auto data, proto::data_of(m));
      auto& sink = t == proto::msg::kStdout ? io_.on_stdout : io_.on_stderr;
      if (sink) sink(data);
      return grant(data.size());
    }
    if (t == proto::msg::kStarted) {
      started_ = true;
      auto pid = proto::get_int(m.payload, "pid", 0, INT32_MAX);  // informational only
      if (io_.on_started) io_.on_started(pid ? static_cast<int>(*pid) : 0);
      return ok_status();
    }
    if (t == proto::msg::kWindow) {
      MOAT_ASSIGN_OR_RETURN(auto n, proto::get_uint(m.payload, "n", 1ull << 32));
      stdin_credit_ += n;
      return ok_status();
    }
    if (t == proto::msg::kExit) {
      MOAT_ASSIGN_OR_RETURN(auto st, proto::parse_exit_status(m.payload));
      status_ = ExitStatus{st.code, st.signal, st.timed_out};
      return ok_status();
    }
    if (t == proto::msg::kError) {
      // The guest is not trusted: a wrongly typed field gives the fallback.
      auto e = proto::parse_error(m.payload);
      if (m.flags & proto::kFlagEndStream) return make_error(e.message);
      return ok_status();  // a non-fatal notice
    }
    return ok_status();
  }

  AgentConnection& conn_;
  const ExecOptions& opts_;
  ExecIo& io_;
  std::uint32_t stream_;
  bool started_ = false;
  bool stdin_done_ = false;
  std::uint64_t stdin_credit_ = proto::kInitialWindow;
  std::uint64_t ungranted_ = 0;
  std::optional<ExitStatus> status_;
  std::optional<Clock::time_point> timeout_at_;
  std::optional<Clock::time_point> interrupted_at_;
  int interrupt_signal_ = 0;
};

}  // namespace

proto::ExecRequest to_request(const ExecOptions& o) {
  proto::ExecRequest r;
  r.argv = o.argv;
  r.env = o.env;
  r.cwd = o.cwd;
  r.user = o.user;
  r.tty = o.tty;
  r.rows = o.rows;
  r.cols = o.cols;
  r.stdin_open = o.stdin_open;
  r.timeout_ms = o.timeout_ms;
  for (const auto& [k, v] : o.rlimits) r.rlimits[k] = proto::Rlimit{v.soft, v.hard};
  return r;
}

Result<ExitStatus> run_exec(AgentConnection& conn, const ExecOptions& options, ExecIo& io) {
  if (options.argv.empty()) return make_error("exec: no command given");
  MOAT_TRY(proto::check_exec_request(to_request(options)));
  ExecStream s(conn, options, io);
  return s.run();
}

}  // namespace moat::sandbox

namespace moat {

Status check_exec_options(const ExecOptions& options) { return proto::check_exec_request(sandbox::to_request(options)); }

}  // namespace moat
