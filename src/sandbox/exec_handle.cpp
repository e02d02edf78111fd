#include "sandbox/exec_handle.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "proto/exec.h"
#include "proto/file_ops.h"
#include "util/unique_fd.h"

namespace moat {
namespace {

using Clock = std::chrono::steady_clock;

// Output is acknowledged in batches of this size (a quarter of the window,
// so the agent never stalls waiting for a grant while data is in flight).
constexpr std::uint64_t kGrantBatch = proto::kInitialWindow / 4;

// The agent enforces a command's timeout; the host gives it this long on top
// to report the kill before it stops waiting for a guest that does not answer.
constexpr std::chrono::seconds kTimeoutGrace{5};
// After a signal that ends a command (SIGINT, SIGTERM, SIGHUP, SIGKILL), a
// guest that sends nothing for this long is not waited for any more.
constexpr std::chrono::seconds kInterruptGrace{10};

bool ends_command(int sig) { return sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGKILL; }

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

// The errno-style code of an exec error the agent reports by name, so
// callers can tell a missing working directory from a bad request.
int exec_error_code(const std::string& agent_code) {
  if (int e = proto::errno_from_name(agent_code)) return e;
  if (agent_code == "bad_cwd") return ENOENT;
  if (agent_code == "bad_user" || agent_code == "bad_request") return EINVAL;
  if (agent_code == "too_many_streams" || agent_code == "stream_in_use") return EAGAIN;
  if (agent_code == "spawn_failed") return ENOEXEC;
  return EPROTO;  // bad_message, unknown_type, ...: the two ends disagree
}

// Milliseconds from now until `t` for poll(): at least 0, rounded up so a
// wake-up is never early.
int ms_until(Clock::time_point t) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left + 1, 1 << 30));
}

}  // namespace

// One exec stream. Two locks: `send_mu` keeps frames whole on the socket
// when several threads send; `mu` guards the state. Exactly one thread at a
// time reads the connection (`reading`); the others wait on `cv`, which is
// notified whenever the state changes.
struct Exec::Impl {
  std::optional<sandbox::AgentConnection> owned;
  sandbox::AgentConnection* conn = nullptr;
  ExecOptions opts;
  ExecCallbacks cb;
  bool pull = false;  // no callbacks: output waits in `queue` for read()
  std::uint32_t stream = 0;
  UniqueFd wake;  // an eventfd: cancel() wakes a reader sleeping in poll

  std::mutex send_mu;
  std::mutex mu;
  std::condition_variable cv;
  bool reading = false;
  bool started = false;
  int pid = 0;
  bool stdin_closed = false;
  std::uint64_t stdin_credit = proto::kInitialWindow;
  std::uint64_t ungranted = 0;
  std::optional<ExitStatus> status;
  std::optional<Error> failure;
  bool cancelled = false;
  std::optional<Clock::time_point> timeout_at;
  std::optional<Clock::time_point> interrupted_at;
  int interrupt_signal = 0;
  std::deque<ExecOutput> queue;

  ~Impl() {
    bool ended;
    {
      std::lock_guard lk(mu);
      ended = status.has_value() || failure.has_value() || cancelled;
    }
    // A command nobody waits for any more is killed, also on a borrowed
    // connection that lives on.
    if (!ended && conn) (void)send(proto::make_message(stream, proto::msg::kCancel));
  }

  const std::string& name() const { return opts.argv[0]; }

  Status send(const proto::Message& m) {
    std::lock_guard lk(send_mu);
    return conn->send(m);
  }

  Status send_stdin(std::string_view bytes) {
    std::lock_guard lk(send_mu);
    return conn->send_data(stream, proto::msg::kStdin, bytes);
  }

  bool ended_locked() const { return status || failure || cancelled; }

  Error cancelled_error() const {
    if (interrupt_signal)
      return make_error(name() + " did not end after " + signal_name(interrupt_signal) +
                            "; it was cancelled and may still be ending in the sandbox",
                        EINTR);
    return make_error(name() + " was cancelled; it may still be ending in the sandbox", EINTR);
  }

  // The outcome once the stream ended in anything but an exit status.
  Error end_error_locked() const { return failure ? *failure : cancelled_error(); }

  // The guest may never answer (a wedged agent): the host keeps its own
  // clocks. True when one ran out (the stream is then failed).
  bool clocks_ran_out_locked() {
    if (ended_locked()) return false;
    auto now = Clock::now();
    if (timeout_at && now >= *timeout_at) {
      failure = make_error(name() + " did not end within its timeout of " + seconds_text(static_cast<std::uint64_t>(opts.timeout.count())) +
                               " s and the sandbox did not report it killed; it was cancelled",
                           ETIMEDOUT);
      return true;
    }
    if (interrupted_at && now >= *interrupted_at + kInterruptGrace) {
      failure = make_error(name() + " did not end after " + signal_name(interrupt_signal) +
                               "; it was cancelled and may still be ending in the sandbox",
                           EINTR);
      return true;
    }
    return false;
  }

  std::optional<Clock::time_point> clock_due_locked() const {
    std::optional<Clock::time_point> due = timeout_at;
    if (interrupted_at && (!due || *interrupted_at + kInterruptGrace < *due)) due = *interrupted_at + kInterruptGrace;
    return due;
  }

  void fail(Error e) {
    std::lock_guard lk(mu);
    if (!ended_locked()) failure = std::move(e);
    cv.notify_all();
  }

  Status grant(std::uint64_t n) {
    std::uint64_t give = 0;
    {
      std::lock_guard lk(mu);
      ungranted += n;
      if (ungranted < kGrantBatch || ended_locked()) return ok_status();
      give = ungranted;
      ungranted = 0;
    }
    proto::Json p = {{"n", give}};
    return send(proto::make_message(stream, proto::msg::kWindow, p));
  }

  // Handles one message of our stream. Runs on the reading thread with no
  // lock held, so callbacks may call back into the handle.
  Status handle(const proto::Message& m) {
    if (m.stream != stream) return ok_status();  // not ours (e.g. a late frame of an earlier exec)
    const std::string& t = m.type;
    std::unique_lock lk(mu);
    // The guest answers: a command still talking after a signal is given its
    // grace again.
    if (interrupted_at) interrupted_at = Clock::now();
    if (t == proto::msg::kStdout || t == proto::msg::kStderr) {
      lk.unlock();
      MOAT_ASSIGN_OR_RETURN(auto data, proto::data_of(m));
      bool out = t == proto::msg::kStdout;
      if (pull) {
        lk.lock();
        queue.push_back({out ? ExecOutput::Kind::kStdout : ExecOutput::Kind::kStderr, std::string(data), {}});
        cv.notify_all();
        return ok_status();  // granted as it is read
      }
      auto& sink = out ? cb.on_stdout : cb.on_stderr;
      if (sink) sink(data);
      return grant(data.size());
    }
    if (t == proto::msg::kStarted) {
      auto p = proto::get_int(m.payload, "pid", 0, INT32_MAX);  // informational only
      started = true;
      pid = p ? static_cast<int>(*p) : 0;
      cv.notify_all();
      lk.unlock();
      if (cb.on_started) cb.on_started(pid);
      return ok_status();
    }
    if (t == proto::msg::kWindow) {
      MOAT_ASSIGN_OR_RETURN(auto n, proto::get_uint(m.payload, "n", 1ull << 32));
      stdin_credit += n;
      cv.notify_all();
      return ok_status();
    }
    if (t == proto::msg::kExit) {
      MOAT_ASSIGN_OR_RETURN(auto st, proto::parse_exit_status(m.payload));
      if (!ended_locked()) {
        status = ExitStatus{st.code, st.signal, st.timed_out};
        if (pull) queue.push_back({ExecOutput::Kind::kExit, {}, *status});
      }
      cv.notify_all();
      return ok_status();
    }
    if (t == proto::msg::kError) {
      // The guest is not trusted: a wrongly typed field gives the fallback.
      auto e = proto::parse_error(m.payload);
      if (m.flags & proto::kFlagEndStream) {
        if (!ended_locked()) failure = make_error(e.message, exec_error_code(e.code));
        cv.notify_all();
      }
      return ok_status();  // otherwise a notice
    }
    return ok_status();
  }

  Status forward_stdin_fd(int fd) {
    std::size_t want;
    {
      std::lock_guard lk(mu);
      want = std::min<std::uint64_t>(stdin_credit, proto::kMaxDataChunk);
    }
    std::string buf(want, '\0');
    ssize_t n = ::read(fd, buf.data(), want);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return ok_status();
    if (n <= 0) return close_stdin();
    buf.resize(static_cast<std::size_t>(n));
    {
      std::lock_guard lk(mu);
      stdin_credit -= static_cast<std::uint64_t>(n);
    }
    return send_stdin(buf);
  }

  Status close_stdin() {
    {
      std::lock_guard lk(mu);
      if (stdin_closed) return ok_status();
      stdin_closed = true;
      if (ended_locked()) return ok_status();
    }
    return send(proto::make_message(stream, proto::msg::kStdinClose));
  }

  // One round as the reading thread: sleeps in poll until the connection (or
  // `stdin_fd`, when the command can take input) has something, the wake fd
  // is poked, or `timeout_ms` passes, then handles what arrived.
  Status pump_once(int timeout_ms, int stdin_fd) {
    pollfd fds[3];
    nfds_t n = 0;
    fds[n++] = {conn->fd(), POLLIN, 0};
    fds[n++] = {wake.get(), POLLIN, 0};
    int stdin_slot = -1;
    if (stdin_fd >= 0) {
      std::lock_guard lk(mu);
      if (!stdin_closed && started && stdin_credit > 0) {
        stdin_slot = static_cast<int>(n);
        fds[n++] = {stdin_fd, POLLIN, 0};
      }
    }
    // Messages decoded by an earlier round come first.
    MOAT_TRY(handle_buffered());
    if (ended()) return ok_status();
    int r = ::poll(fds, n, timeout_ms);
    if (r < 0) return errno == EINTR ? ok_status() : errno_error("poll");
    if (fds[1].revents & POLLIN) {
      std::uint64_t v;
      (void)!::read(wake.get(), &v, sizeof(v));
    }
    if (stdin_slot >= 0 && (fds[stdin_slot].revents & (POLLIN | POLLHUP | POLLERR))) MOAT_TRY(forward_stdin_fd(stdin_fd));
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      auto st = conn->pump();
      if (!st) return st.error().wrap("while running " + name());
      MOAT_TRY(handle_buffered());
    }
    return ok_status();
  }

  Status handle_buffered() {
    while (true) {
      MOAT_ASSIGN_OR_RETURN(auto m, conn->buffered());
      if (!m) return ok_status();
      MOAT_TRY(handle(*m));
      if (ended()) return ok_status();
    }
  }

  bool ended() {
    std::lock_guard lk(mu);
    return ended_locked();
  }

  // Waits until `ready()` holds (checked under `mu`), the stream ends, or
  // `deadline` passes, reading the connection when no other thread does.
  // False on the deadline.
  template <class Ready>
  Result<bool> drive(std::optional<Clock::time_point> deadline, Ready ready, int stdin_fd = -1) {
    std::unique_lock lk(mu);
    while (true) {
      if (ready()) return true;
      if (clocks_ran_out_locked()) {
        cv.notify_all();
        lk.unlock();
        (void)send(proto::make_message(stream, proto::msg::kCancel));
        lk.lock();
        continue;  // ready() or the caller sees the failure
      }
      if (ended_locked()) return true;
      if (deadline && Clock::now() >= *deadline) return false;
      auto due = clock_due_locked();
      if (deadline && (!due || *deadline < *due)) due = deadline;
      if (reading) {
        if (due) cv.wait_until(lk, *due);
        else cv.wait(lk);
        continue;
      }
      reading = true;
      lk.unlock();
      auto st = pump_once(due ? ms_until(*due) : -1, stdin_fd);
      lk.lock();
      reading = false;
      if (!st && !ended_locked()) failure = st.error();
      cv.notify_all();
    }
  }
};

Exec::Exec(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Exec::Exec(Exec&&) noexcept = default;
Exec& Exec::operator=(Exec&&) noexcept = default;
Exec::~Exec() = default;

int Exec::pid() const {
  std::lock_guard lk(impl_->mu);
  return impl_->pid;
}

Status Exec::write_stdin(std::string_view bytes) {
  auto& s = *impl_;
  auto closed = [&] {
    return make_error("the stdin of " + s.name() + " is closed" +
                          (s.status || s.failure ? " (it ended)" : ""),
                      EPIPE);
  };
  if (!s.opts.stdin_open) return make_error(s.name() + " was started without stdin_open", EPIPE);
  while (!bytes.empty()) {
    std::size_t n = 0;
    {
      std::unique_lock lk(s.mu);
      if (s.stdin_closed || s.ended_locked()) return closed();
    }
    MOAT_ASSIGN_OR_RETURN(bool got, s.drive(std::nullopt, [&] {
      return s.stdin_closed || (s.started && s.stdin_credit > 0);
    }));
    (void)got;
    {
      std::lock_guard lk(s.mu);
      if (s.stdin_closed || s.ended_locked()) return closed();
      n = std::min<std::uint64_t>({s.stdin_credit, proto::kMaxDataChunk, bytes.size()});
      s.stdin_credit -= n;
    }
    MOAT_TRY(s.send_stdin(bytes.substr(0, n)));
    bytes.remove_prefix(n);
  }
  return ok_status();
}

Status Exec::close_stdin() { return impl_->close_stdin(); }

Status Exec::signal(int sig) {
  auto& s = *impl_;
  if (sig <= 0 || sig >= 65) return make_error("signal " + std::to_string(sig) + " is not a signal", EINVAL);
  {
    std::lock_guard lk(s.mu);
    if (s.ended_locked()) return make_error(s.name() + " has ended", ESRCH);
    if (ends_command(sig) && !s.interrupted_at) {
      s.interrupted_at = Clock::now();
      s.interrupt_signal = sig;
    }
    s.cv.notify_all();  // a waiter's clock changed
  }
  proto::Json p = {{"sig", sig}};
  auto st = s.send(proto::make_message(s.stream, proto::msg::kSignal, p));
  std::uint64_t one = 1;
  (void)!::write(s.wake.get(), &one, sizeof(one));  // the reader recomputes its clock
  return st;
}

Status Exec::kill() { return signal(SIGKILL); }

Status Exec::resize(std::uint16_t rows, std::uint16_t cols) {
  auto& s = *impl_;
  {
    std::lock_guard lk(s.mu);
    if (s.ended_locked()) return make_error(s.name() + " has ended", ESRCH);
  }
  proto::Json p = {{"rows", rows}, {"cols", cols}};
  return s.send(proto::make_message(s.stream, proto::msg::kResize, p));
}

void Exec::cancel() {
  auto& s = *impl_;
  {
    std::lock_guard lk(s.mu);
    if (s.ended_locked()) return;
    s.cancelled = true;
    s.cv.notify_all();
  }
  std::uint64_t one = 1;
  (void)!::write(s.wake.get(), &one, sizeof(one));
  (void)s.send(proto::make_message(s.stream, proto::msg::kCancel));
}

namespace {

// No timeout: no deadline. A negative one is taken as zero (only look).
std::optional<std::chrono::steady_clock::time_point> deadline_after(std::optional<Duration> timeout) {
  if (!timeout) return std::nullopt;
  return std::chrono::steady_clock::now() + std::max(*timeout, Duration::zero());
}

}  // namespace

Result<std::optional<ExitStatus>> Exec::wait(std::optional<Duration> timeout) {
  auto& s = *impl_;
  std::optional<Clock::time_point> deadline = deadline_after(timeout);
  while (true) {
    // Without callbacks, what nobody read() is dropped and granted, so the
    // command is never stalled by a full window while we wait.
    if (s.pull) {
      std::uint64_t dropped = 0;
      {
        std::lock_guard lk(s.mu);
        while (!s.queue.empty() && s.queue.front().kind != ExecOutput::Kind::kExit) {
          dropped += s.queue.front().data.size();
          s.queue.pop_front();
        }
      }
      if (dropped) MOAT_TRY(s.grant(dropped));
    }
    MOAT_ASSIGN_OR_RETURN(bool done, s.drive(deadline, [&] {
      return s.ended_locked() || (s.pull && !s.queue.empty() && s.queue.front().kind != ExecOutput::Kind::kExit);
    }));
    std::lock_guard lk(s.mu);
    if (s.status) return std::optional<ExitStatus>(*s.status);
    if (s.ended_locked()) return s.end_error_locked();
    if (!done) return std::optional<ExitStatus>();
  }
}

Result<std::optional<ExecOutput>> Exec::read(std::optional<Duration> timeout) {
  auto& s = *impl_;
  if (!s.pull) return make_error("read(): this command's output goes to its callbacks", EINVAL);
  std::optional<Clock::time_point> deadline = deadline_after(timeout);
  MOAT_ASSIGN_OR_RETURN(bool got, s.drive(deadline, [&] { return !s.queue.empty(); }));
  ExecOutput out;
  {
    std::lock_guard lk(s.mu);
    if (s.queue.empty()) {
      if (!got) return std::optional<ExecOutput>();
      if (s.status) return std::optional<ExecOutput>(ExecOutput{ExecOutput::Kind::kExit, {}, *s.status});
      return s.end_error_locked();
    }
    out = std::move(s.queue.front());
    // The exit stays, so every later read() reports it again.
    if (out.kind != ExecOutput::Kind::kExit) s.queue.pop_front();
  }
  if (!out.data.empty()) MOAT_TRY(s.grant(out.data.size()));
  return std::optional<ExecOutput>(std::move(out));
}

namespace sandbox {

namespace {

Result<std::unique_ptr<Exec::Impl>> begin(AgentConnection* conn, const ExecOptions& options,
                                           const ExecCallbacks& callbacks) {
  if (options.argv.empty()) return make_error("exec: no command given", EINVAL);
  MOAT_TRY(proto::check_exec_request(to_request(options)));
  auto s = std::make_unique<Exec::Impl>();
  s->wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s->wake) return errno_error("eventfd");
  s->opts = options;
  s->cb = callbacks;
  s->pull = !callbacks.on_stdout && !callbacks.on_stderr;
  s->stdin_closed = !options.stdin_open;
  if (options.timeout > Duration::zero()) s->timeout_at = Clock::now() + options.timeout + kTimeoutGrace;
  s->conn = conn;
  s->stream = conn->next_stream();
  auto st = s->send(proto::make_message(s->stream, proto::msg::kExec, proto::to_payload(to_request(options))));
  if (!st) {
    s->conn = nullptr;  // nothing to cancel
    return st.error();
  }
  return s;
}

}  // namespace

Result<Exec> start_exec(AgentConnection conn, const ExecOptions& options, const ExecCallbacks& callbacks) {
  auto owned = std::make_optional(std::move(conn));
  MOAT_ASSIGN_OR_RETURN(auto s, begin(&*owned, options, callbacks));
  s->owned = std::move(owned);
  s->conn = &*s->owned;
  return Exec(std::move(s));
}

Result<ExitStatus> run_exec(AgentConnection& conn, const ExecOptions& options, ExecIo& io) {
  ExecCallbacks cb;
  cb.on_stdout = io.on_stdout ? io.on_stdout : [](std::string_view) {};
  cb.on_stderr = io.on_stderr ? io.on_stderr : [](std::string_view) {};
  cb.on_started = io.on_started;
  MOAT_ASSIGN_OR_RETURN(auto s, begin(&conn, options, cb));
  if (options.stdin_open && io.stdin_fd < 0) MOAT_TRY(s->close_stdin());
  MOAT_TRY(s->drive(std::nullopt, [&] { return s->ended_locked(); }, io.stdin_fd));
  std::lock_guard lk(s->mu);
  if (s->status) return *s->status;
  return s->end_error_locked();
}

}  // namespace sandbox
}  // namespace moat
