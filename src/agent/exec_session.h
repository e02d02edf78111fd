// One exec stream in the agent: a running process, its output flowing to the
// host within the host's flow-control window, its stdin flowing in within the
// window the agent grants, and the exit status once everything is drained.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/outbox.h"
#include "agent/process_spawner.h"
#include "proto/exec.h"
#include "proto/message.h"

namespace moat::agent {

using Clock = std::chrono::steady_clock;

class ExecSession {
 public:
  ExecSession(std::uint32_t stream, SpawnedProcess proc, const proto::ExecRequest& req, Outbox& out);

  std::uint32_t stream() const { return stream_; }
  pid_t pid() const { return proc_.pid; }

  // Poll integration: the fds and events this session waits for now.
  void add_poll_fds(std::vector<pollfd>& fds) const;
  // Handles readiness reported for `fd`.
  void on_poll(int fd, short revents);
  // Earliest time this session needs attention without fd activity.
  std::optional<Clock::time_point> next_deadline() const;
  void on_timer(Clock::time_point now);

  // Messages from the host on this stream.
  void on_message(const proto::Message& m);

  // The process was reaped with this wait status.
  void on_reaped(int wait_status);

  // Kills the process group and stops reporting (host went away or asked).
  void cancel();

  // True once the exit message has been sent (or the session was cancelled).
  bool finished() const { return finished_; }

 private:
  void read_output(UniqueFd& fd, std::string_view type);
  void write_stdin();
  void maybe_finish();
  void grant_stdin(std::size_t n, bool force);
  void fail(std::string_view code, const std::string& text);
  void signal_group(int sig);

  std::uint32_t stream_;
  SpawnedProcess proc_;
  bool tty_;
  Outbox& out_;

  std::uint64_t out_credit_ = proto::kInitialWindow;
  std::string stdin_buf_;
  std::size_t stdin_ungranted_ = 0;
  bool stdin_close_requested_ = false;

  std::optional<Clock::time_point> timeout_at_;
  bool timed_out_ = false;
  std::optional<int> wait_status_;
  Clock::time_point drain_deadline_{};
  bool finished_ = false;
};

}  // namespace moat::agent
