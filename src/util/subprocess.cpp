#include "util/subprocess.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "util/unique_fd.h"

namespace moat {

Result<CommandResult> run_command(const std::vector<std::string>& argv) {
  if (argv.empty()) return make_error("run_command: empty argv");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_error("pipe");
  UniqueFd rd(fds[0]), wr(fds[1]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(wr.get(), 1);
    ::dup2(wr.get(), 2);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  wr.reset();
  CommandResult res;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(rd.get(), buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (res.output.size() < 64 * 1024) res.output.append(buf, static_cast<std::size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return res;
}

Status run_checked(const std::vector<std::string>& argv) {
  MOAT_ASSIGN_OR_RETURN(auto res, run_command(argv));
  if (res.exit_code == 0) return ok_status();
  std::string tail = res.output.size() > 2000 ? res.output.substr(res.output.size() - 2000) : res.output;
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  if (res.exit_code == 127 && tail.empty()) tail = "command not found";
  return make_error(argv[0] + " failed (exit " + std::to_string(res.exit_code) + "): " + tail);
}

}  // namespace moat
