// The CLI's side of a terminal: raw mode for `-t`, the window size, and the
// self-pipe that turns signals into events for the exec loop.
#pragma once

#include <termios.h>

#include <cstdint>
#include <optional>
#include <utility>

namespace moat::cli {

// Puts a terminal in raw mode for its lifetime, restoring it afterwards.
class RawTerminal {
 public:
  explicit RawTerminal(int fd);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  std::optional<struct termios> saved_;
};

std::pair<std::uint16_t, std::uint16_t> window_size(int fd);

// Routes SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 (as their numbers)
// and SIGWINCH (as 0) into a pipe whose read end is returned; restores the
// previous handlers when destroyed.
class SignalForwarder {
 public:
  SignalForwarder();
  ~SignalForwarder();
  SignalForwarder(const SignalForwarder&) = delete;
  SignalForwarder& operator=(const SignalForwarder&) = delete;
  int fd() const { return read_fd_; }
  // Queues signal `sig` for the command as if the CLI had received it.
  void inject(int sig);
  // The last SIGINT, SIGTERM or SIGHUP received (0 if none): a CLI that stops
  // waiting because of it exits as that signal would have ended it.
  static int last_interrupt();

 private:
  int read_fd_ = -1;
};

}  // namespace moat::cli
