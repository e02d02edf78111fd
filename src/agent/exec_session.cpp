#include "agent/exec_session.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>

namespace moat::agent {
namespace {

// After the process exits, output still in pipes (or held open by a
// background child) is read until it stays quiet this long.
constexpr auto kDrainQuiet = std::chrono::milliseconds(200);
// Grants for stdin go out in batches, not per write.
constexpr std::size_t kStdinGrantBatch = 32 * 1024;
// A client must not send more stdin than its window; a little slack covers
// a window update in flight.
constexpr std::size_t kMaxStdinBuffer = 2 * proto::kInitialWindow;

}  // namespace

ExecSession::ExecSession(std::uint32_t stream, SpawnedProcess proc, const proto::ExecRequest& req,
                         Outbox& out)
    : stream_(stream), proc_(std::move(proc)), tty_(req.tty), out_(out) {
  if (req.timeout_ms > 0) timeout_at_ = Clock::now() + std::chrono::milliseconds(req.timeout_ms);
  proto::Json p = proto::Json::object();
  p["pid"] = proc_.pid;
  out_.send(proto::make_message(stream_, proto::msg::kStarted, std::move(p)));
}

void ExecSession::add_poll_fds(std::vector<pollfd>& fds) const {
  if (finished_) return;
  if (out_credit_ > 0) {
    if (proc_.stdout_fd) fds.push_back({proc_.stdout_fd.get(), POLLIN, 0});
    if (proc_.stderr_fd) fds.push_back({proc_.stderr_fd.get(), POLLIN, 0});
  }
  if (!stdin_buf_.empty()) {
    int fd = tty_ ? proc_.master_fd.get() : proc_.stdin_fd.get();
    if (fd >= 0) fds.push_back({fd, POLLOUT, 0});
  }
}

void ExecSession::on_poll(int fd, short revents) {
  if (finished_) return;
  if (revents & (POLLIN | POLLHUP | POLLERR)) {
    if (proc_.stdout_fd && fd == proc_.stdout_fd.get())
      read_output(proc_.stdout_fd, proto::msg::kStdout);
    else if (proc_.stderr_fd && fd == proc_.stderr_fd.get())
      read_output(proc_.stderr_fd, proto::msg::kStderr);
  }
  if (revents & (POLLOUT | POLLERR)) {
    int in_fd = tty_ ? proc_.master_fd.get() : proc_.stdin_fd.get();
    if (fd == in_fd) write_stdin();
  }
  maybe_finish();
}

void ExecSession::read_output(UniqueFd& fd, std::string_view type) {
  std::size_t want = std::min<std::uint64_t>(out_credit_, proto::kMaxDataChunk);
  if (want == 0) return;
  ssize_t n = out_.read_data(fd.get(), stream_, type, want);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    // EOF on a pipe, or EIO on a pty master once the last slave is closed.
    fd.reset();
    return;
  }
  out_credit_ -= static_cast<std::uint64_t>(n);
  if (wait_status_) drain_deadline_ = Clock::now() + kDrainQuiet;
}

void ExecSession::write_stdin() {
  int fd = tty_ ? proc_.master_fd.get() : proc_.stdin_fd.get();
  while (!stdin_buf_.empty() && fd >= 0) {
    ssize_t n = ::write(fd, stdin_buf_.data(), stdin_buf_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      // The reader is gone (EPIPE): what is left can never be delivered.
      grant_stdin(stdin_buf_.size(), false);
      stdin_buf_.clear();
      if (!tty_) proc_.stdin_fd.reset();
      break;
    }
    stdin_buf_.erase(0, static_cast<std::size_t>(n));
    grant_stdin(static_cast<std::size_t>(n), false);
  }
  if (stdin_buf_.empty()) {
    grant_stdin(0, true);
    if (stdin_close_requested_) {
      if (tty_) {
        // A terminal has no half-close; end-of-file is the VEOF character.
        if (proc_.master_fd) {
          char eof = 4;
          ssize_t w = ::write(proc_.master_fd.get(), &eof, 1);
          (void)w;
        }
      } else {
        proc_.stdin_fd.reset();
      }
      stdin_close_requested_ = false;
    }
  }
}

void ExecSession::grant_stdin(std::size_t n, bool force) {
  stdin_ungranted_ += n;
  if (stdin_ungranted_ == 0) return;
  if (!force && stdin_ungranted_ < kStdinGrantBatch) return;
  proto::Json p = proto::Json::object();
  p["n"] = stdin_ungranted_;
  stdin_ungranted_ = 0;
  out_.send(proto::make_message(stream_, proto::msg::kWindow, std::move(p)));
}

void ExecSession::on_message(const proto::Message& m) {
  if (finished_) return;
  const std::string& t = m.type;
  if (t == proto::msg::kStdin) {
    auto data = proto::data_of(m);
    if (!data) return fail("bad_message", data.error().message);
    bool can_write = tty_ ? proc_.master_fd.valid() : proc_.stdin_fd.valid();
    if (!can_write) {
      grant_stdin(data->size(), true);  // nobody reads it; keep the client moving
      return;
    }
    if (stdin_buf_.size() + data->size() > kMaxStdinBuffer)
      return fail("flow_control", "stdin sent beyond the granted window");
    stdin_buf_ += *data;
    write_stdin();
  } else if (t == proto::msg::kStdinClose) {
    stdin_close_requested_ = true;
    write_stdin();
  } else if (t == proto::msg::kWindow) {
    auto n = proto::get_uint(m.payload, "n", 1ull << 32);
    if (!n) return fail("bad_message", n.error().message);
    out_credit_ = std::min<std::uint64_t>(out_credit_ + *n, 1ull << 32);
  } else if (t == proto::msg::kResize) {
    auto rows = proto::get_uint(m.payload, "rows", 0xffff);
    auto cols = proto::get_uint(m.payload, "cols", 0xffff);
    if (!rows || !cols) return fail("bad_message", "resize needs rows and cols");
    if (tty_ && proc_.master_fd) {
      struct winsize ws {};
      ws.ws_row = static_cast<unsigned short>(*rows);
      ws.ws_col = static_cast<unsigned short>(*cols);
      ::ioctl(proc_.master_fd.get(), TIOCSWINSZ, &ws);
    }
  } else if (t == proto::msg::kSignal) {
    auto sig = proto::get_int(m.payload, "sig", 1, 64);
    if (!sig) return fail("bad_message", sig.error().message);
    signal_group(static_cast<int>(*sig));
  } else if (t == proto::msg::kCancel) {
    cancel();
  } else {
    // Unknown types on an exec stream are answered but do not end it, so a
    // newer client can probe.
    out_.send(proto::make_error_message(stream_, "unknown_type", "unknown message type \"" + t + "\"",
                                    false));
  }
  maybe_finish();
}

void ExecSession::signal_group(int sig) {
  if (wait_status_) return;
  if (::kill(-proc_.pid, sig) != 0) ::kill(proc_.pid, sig);
}

void ExecSession::fail(std::string_view code, const std::string& text) {
  out_.send(proto::make_error_message(stream_, code, text, true));
  signal_group(SIGKILL);
  finished_ = true;
}

void ExecSession::cancel() {
  signal_group(SIGKILL);
  finished_ = true;
}

void ExecSession::on_reaped(int wait_status) {
  wait_status_ = wait_status;
  drain_deadline_ = Clock::now() + kDrainQuiet;
  maybe_finish();
}

std::optional<Clock::time_point> ExecSession::next_deadline() const {
  if (finished_) return std::nullopt;
  if (wait_status_) return drain_deadline_;
  return timeout_at_;
}

void ExecSession::on_timer(Clock::time_point now) {
  if (finished_) return;
  if (!wait_status_ && timeout_at_ && now >= *timeout_at_) {
    timed_out_ = true;
    timeout_at_.reset();
    signal_group(SIGKILL);
  }
  if (wait_status_ && now >= drain_deadline_ && out_credit_ > 0) {
    // Quiet with room to send: whatever still holds the output open (a
    // background process) does not keep the exit from being reported.
    proc_.stdout_fd.reset();
    proc_.stderr_fd.reset();
  }
  maybe_finish();
}

void ExecSession::maybe_finish() {
  if (finished_ || !wait_status_) return;
  if (proc_.stdout_fd || proc_.stderr_fd) return;
  proto::ExitStatus st;
  int ws = *wait_status_;
  if (WIFEXITED(ws)) st.code = WEXITSTATUS(ws);
  if (WIFSIGNALED(ws)) st.signal = WTERMSIG(ws);
  st.timed_out = timed_out_;
  grant_stdin(0, true);
  out_.send(proto::make_message(stream_, proto::msg::kExit, proto::to_payload(st), proto::kFlagEndStream));
  finished_ = true;
}

}  // namespace moat::agent
