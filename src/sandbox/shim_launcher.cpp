#include "sandbox/shim_launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "shim_contract/capped_log.h"
#include "shim_contract/sandbox_layout.h"
#include "shim_contract/shim_config.h"
#include "util/unique_fd.h"
#include "vm/child_env.h"

namespace moat::sandbox {
namespace {

// How much of shim.log an error quotes when the shim gave no verdict.
constexpr std::size_t kShimLogTail = 4096;

// `envp` is built before fork: allocating in the child of a threaded
// process is not safe.
[[noreturn]] void exec_shim(const std::string& shim, const std::string& dir, int ready_fd, char* const* envp) {
  ::setsid();
  // Fork again so the shim is not a session leader and not our child: it
  // outlives the caller and is reaped by init (or the subreaper).
  pid_t pid = ::fork();
  if (pid != 0) ::_exit(pid < 0 ? 1 : 0);
  int devnull = ::open("/dev/null", O_RDWR);
  // The shim takes the file over at once, capped (shim/shim_log.h); until
  // then only its own first lines land here.
  int log = ::open(shim::shim_log_path(dir).c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  ::dup2(devnull, 0);
  ::dup2(log >= 0 ? log : devnull, 1);
  ::dup2(log >= 0 ? log : devnull, 2);
  ::dup2(ready_fd, 3);
  ::syscall(SYS_close_range, 4u, ~0u, 0u);
  std::string fd = "3";
  const char* argv[] = {shim.c_str(), dir.c_str(), "--ready-fd", fd.c_str(), nullptr};
  ::execve(shim.c_str(), const_cast<char* const*>(argv), envp);
  ::_exit(127);
}

}  // namespace

Result<pid_t> launch_shim(const std::string& shim_path, const std::string& sandbox_dir, int wait_ms) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_error("pipe");
  UniqueFd rd(fds[0]), wr(fds[1]);
  // The shim (and QEMU after it) gets an allow-listed environment only.
  std::vector<std::string> env_storage;
  std::vector<char*> envp = vm::child_envp(environ, env_storage);
  pid_t child = ::fork();
  if (child < 0) return errno_error("fork");
  if (child == 0) exec_shim(shim_path, sandbox_dir, wr.get(), envp.data());
  wr.reset();
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }

  std::string verdict;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return make_error("the sandbox did not become ready within " + std::to_string(wait_ms / 1000) + " s");
    pollfd p{rd.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("poll");
    if (n == 0) continue;
    char buf[4096];
    ssize_t r = ::read(rd.get(), buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    verdict.append(buf, static_cast<std::size_t>(r));
    if (verdict.size() > 65536) break;
  }
  while (!verdict.empty() && verdict.back() == '\n') verdict.pop_back();
  if (verdict == "ok") return shim::read_shim_pid(sandbox_dir);
  if (verdict.rfind("error: ", 0) == 0) return make_error(verdict.substr(7));
  std::string log = shim::capped_log_tail(shim::shim_log_path(sandbox_dir), kShimLogTail);
  return make_error("moat-shim ended without a verdict" + (log.empty() ? std::string() : ": " + log));
}

}  // namespace moat::sandbox
