// The seccomp allow-lists of the shim and the volume servers
// (src/jail/syscall_filter.h, src/shim/syscall_lists.h): what they let
// through works, what they leave out ends the process with one line naming
// the call. Each case runs in a forked child, which the filter stays with.
#include "jail/syscall_filter.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>

#include "shim/syscall_lists.h"

namespace moat::jail {
namespace {

struct Outcome {
  int status = 0;
  std::string stderr_text;
};

// Forks; the child installs `filter`, runs `body` and exits with what it
// returns. Returns the child's wait status and what it wrote to stderr.
Outcome run_filtered(const SyscallFilter& filter, const std::function<int()>& body) {
  int err[2];
  EXPECT_EQ(::pipe(err), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(err[1], 2);
    if (!install_syscall_filter(filter)) ::_exit(100);
    ::_exit(body());
  }
  ::close(err[1]);
  Outcome o;
  char buf[512];
  for (ssize_t n; (n = ::read(err[0], buf, sizeof buf)) > 0;) o.stderr_text.append(buf, static_cast<std::size_t>(n));
  ::close(err[0]);
  ::waitpid(pid, &o.status, 0);
  return o;
}

void expect_trapped(const Outcome& o, const std::string& who, long nr) {
  if (!syscall_filters_enforce()) {
    // Sanitizer build: the call went through, and the body said so.
    EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << o.status << " " << o.stderr_text;
    return;
  }
  ASSERT_TRUE(WIFEXITED(o.status)) << o.status;
  EXPECT_EQ(WEXITSTATUS(o.status), kFilterViolationExit);
  EXPECT_EQ(o.stderr_text, who + ": system call " + std::to_string(nr) +
                               " is outside the process's seccomp filter; ending the process\n");
}

TEST(JailSyscallFilter, VolumeServerMayUseFilesAndThreadsButOpensNoSocket) {
  auto filter = shim::volume_server_syscall_filter("moat-volume[/v]");
  char dir[] = "/tmp/moat-filter-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string file = std::string(dir) + "/f";
  Outcome fine = run_filtered(filter, [&] {
    int fd = ::open(file.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 || ::write(fd, "x", 1) != 1 || ::fsync(fd) != 0) return 1;
    ::close(fd);
    int ran = 0;
    std::thread t([&] { ran = 1; });
    t.join();
    if (ran != 1 || ::unlink(file.c_str()) != 0) return 2;
    return 0;
  });
  EXPECT_TRUE(WIFEXITED(fine.status) && WEXITSTATUS(fine.status) == 0) << fine.status << " " << fine.stderr_text;
  EXPECT_EQ(fine.stderr_text, "");
  ::rmdir(dir);

  Outcome socket = run_filtered(filter, [] {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    return s >= 0 ? 0 : 3;
  });
  expect_trapped(socket, "moat-volume[/v]", SYS_socket);
}

TEST(JailSyscallFilter, ShimStartsNoProcessAndExecsNothing) {
  auto filter = shim::shim_syscall_filter();
  Outcome forked = run_filtered(filter, [] {
    pid_t p = ::fork();  // glibc: clone without CLONE_THREAD
    if (p == 0) ::_exit(0);
    if (p > 0) ::waitpid(p, nullptr, 0);
    return p > 0 ? 0 : 4;
  });
  expect_trapped(forked, "moat-shim", SYS_clone);

  Outcome execd = run_filtered(filter, [] {
    ::execl("/bin/true", "true", static_cast<char*>(nullptr));
    return 0;  // not reached when it runs; unfiltered, true exits 0 too
  });
  expect_trapped(execd, "moat-shim", SYS_execve);
}

TEST(JailSyscallFilter, SignalsReachOnlyTheProcessItself) {
  auto filter = shim::shim_syscall_filter();
  pid_t parent = ::getpid();
  // A signal to itself (what abort() and raise() send) is allowed.
  Outcome own = run_filtered(filter, [] {
    ::signal(SIGUSR1, SIG_IGN);
    return ::raise(SIGUSR1) == 0 ? 0 : 5;
  });
  EXPECT_TRUE(WIFEXITED(own.status) && WEXITSTATUS(own.status) == 0) << own.status << " " << own.stderr_text;
  // Another process: tgkill of another thread group, or kill.
  ::signal(SIGUSR2, SIG_IGN);
  Outcome other = run_filtered(filter, [parent] {
    return ::syscall(SYS_tgkill, parent, parent, SIGUSR2) == 0 ? 0 : 6;
  });
  expect_trapped(other, "moat-shim", SYS_tgkill);
  Outcome killed = run_filtered(filter, [parent] { return ::kill(parent, SIGUSR2) == 0 ? 0 : 7; });
  expect_trapped(killed, "moat-shim", SYS_kill);
  ::signal(SIGUSR2, SIG_DFL);
}

TEST(JailSyscallFilter, Clone3AnswersEnosysSoThreadsFallBackToClone) {
  Outcome o = run_filtered(shim::shim_syscall_filter(), [] {
    long r = ::syscall(SYS_clone3, nullptr, 0);
    if (syscall_filters_enforce() && !(r == -1 && errno == ENOSYS)) return 8;
    int ran = 0;
    std::thread t([&] { ran = 1; });
    t.join();
    return ran == 1 ? 0 : 9;
  });
  EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << o.status << " " << o.stderr_text;
}

}  // namespace
}  // namespace moat::jail
