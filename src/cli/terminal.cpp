#include "cli/terminal.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace moat::cli {
namespace {

int g_signal_pipe = -1;
constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

volatile sig_atomic_t g_last_interrupt = 0;

void on_signal(int sig) {
  if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) g_last_interrupt = sig;
  unsigned char b = sig == SIGWINCH ? 0 : static_cast<unsigned char>(sig);
  if (g_signal_pipe >= 0) {
    ssize_t w = ::write(g_signal_pipe, &b, 1);
    (void)w;
  }
}

}  // namespace

RawTerminal::RawTerminal(int fd) : fd_(fd) {
  struct termios t {};
  if (::isatty(fd) && ::tcgetattr(fd, &t) == 0) {
    saved_ = t;
    ::cfmakeraw(&t);
    ::tcsetattr(fd, TCSANOW, &t);
  }
}

RawTerminal::~RawTerminal() {
  if (saved_) ::tcsetattr(fd_, TCSANOW, &*saved_);
}

std::pair<std::uint16_t, std::uint16_t> window_size(int fd) {
  struct winsize ws {};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) return {ws.ws_row, ws.ws_col};
  return {24, 80};
}

SignalForwarder::SignalForwarder() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
  read_fd_ = fds[0];
  g_signal_pipe = fds[1];
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : kForwarded) ::sigaction(sig, &sa, nullptr);
}

void SignalForwarder::inject(int sig) { on_signal(sig); }

int SignalForwarder::last_interrupt() { return g_last_interrupt; }

SignalForwarder::~SignalForwarder() {
  for (int sig : kForwarded) ::signal(sig, SIG_DFL);
  if (g_signal_pipe >= 0) ::close(g_signal_pipe);
  if (read_fd_ >= 0) ::close(read_fd_);
  g_signal_pipe = -1;
}

}  // namespace moat::cli
