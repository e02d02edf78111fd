#include "sandbox/root_reader.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "util/unique_fd.h"
#include "vm/runtime_files.h"

extern char** environ;

namespace moat::sandbox {
namespace {

constexpr std::size_t kMaxErrorText = 4096;
constexpr int kUpperFd = 3;
constexpr int kLowerFd = 4;

struct Pipes {
  UniqueFd out_r, out_w, err_r, err_w;
};

Result<Pipes> make_pipes() {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return errno_error("pipe");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return errno_error("pipe");
  }
  return Pipes{UniqueFd(out[0]), UniqueFd(out[1]), UniqueFd(err[0]), UniqueFd(err[1])};
}

Result<pid_t> spawn(const std::string& shim, const std::string& mode, int upper, int lower, const Pipes& p) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  // dup2 clears close-on-exec on the copies; the originals close at exec.
  posix_spawn_file_actions_adddup2(&fa, p.out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, p.err_w.get(), 2);
  posix_spawn_file_actions_adddup2(&fa, upper, kUpperFd);
  posix_spawn_file_actions_adddup2(&fa, lower, kLowerFd);
  std::vector<std::string> args = {shim, "--read-root", mode, "--upper-fd", std::to_string(kUpperFd),
                                   "--lower-fd", std::to_string(kLowerFd)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, shim.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return errno_error("start " + shim, rc);
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// Pumps stdout to `on_output` and keeps a bounded tail of stderr, until both close.
Status pump(Pipes& p, const std::function<Status(std::string_view)>& on_output, std::string& err_text) {
  std::vector<char> buf(1 << 16);
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    struct pollfd fds[2] = {{out_open ? p.out_r.get() : -1, POLLIN, 0}, {err_open ? p.err_r.get() : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return errno_error("poll");
    }
    if (out_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::read(p.out_r.get(), buf.data(), buf.size());
      if (n < 0 && errno != EINTR) return errno_error("read the root reader's output");
      if (n == 0) out_open = false;
      if (n > 0) MOAT_TRY(on_output(std::string_view(buf.data(), static_cast<std::size_t>(n))));
    }
    if (err_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::read(p.err_r.get(), buf.data(), buf.size());
      if (n == 0 || (n < 0 && errno != EINTR)) err_open = false;
      if (n > 0 && err_text.size() < kMaxErrorText)
        err_text.append(buf.data(), std::min<std::size_t>(static_cast<std::size_t>(n), kMaxErrorText - err_text.size()));
    }
  }
  return ok_status();
}

}  // namespace

Status run_root_reader(const std::string& mode, const std::string& upper_disk, const std::string& lower_disk,
                       const std::function<Status(std::string_view)>& on_output) {
  MOAT_ASSIGN_OR_RETURN(auto shim, vm::find_shim());
  UniqueFd upper(::open(upper_disk.c_str(), O_RDONLY | O_CLOEXEC));
  if (!upper) return errno_error("open " + upper_disk);
  UniqueFd lower(::open(lower_disk.c_str(), O_RDONLY | O_CLOEXEC));
  if (!lower) return errno_error("open " + lower_disk);
  MOAT_ASSIGN_OR_RETURN(auto pipes, make_pipes());
  MOAT_ASSIGN_OR_RETURN(pid_t pid, spawn(shim, mode, upper.get(), lower.get(), pipes));
  pipes.out_w.reset();
  pipes.err_w.reset();
  std::string err_text;
  Status pumped = pump(pipes, on_output, err_text);
  if (!pumped) ::kill(pid, SIGKILL);
  pipes.out_r.reset();
  pipes.err_r.reset();
  int code = wait_for(pid);
  MOAT_TRY(pumped);
  while (!err_text.empty() && err_text.back() == '\n') err_text.pop_back();
  if (code != 0) {
    int errcode = err_text.find("not unmounted cleanly") != std::string::npos ? EUCLEAN : EIO;
    return make_error(err_text.empty() ? "the root reader exited with status " + std::to_string(code) : err_text,
                      errcode);
  }
  return ok_status();
}

}  // namespace moat::sandbox
