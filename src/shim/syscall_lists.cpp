#include "shim/syscall_lists.h"

#include <sys/ioctl.h>
#include <termios.h>

#include <initializer_list>

namespace moat::shim {
namespace {

void add(jail::SyscallFilter& f, std::initializer_list<const char*> names) {
  for (const char* n : names) f.allowed.emplace_back(n);
}

// What any thread of either process needs: memory, threads and their
// locks, time, its own signals, reading and writing descriptors it holds,
// waiting on them, and ending.
void add_runtime(jail::SyscallFilter& f) {
  add(f, {"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "membarrier"});
  add(f, {"futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address", "sched_yield",
          "sched_getaffinity", "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid",
          "prlimit64", "getrlimit", "getrusage", "uname", "getcwd"});
  add(f, {"clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "getrandom"});
  add(f, {"rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "sigaltstack", "restart_syscall"});
  add(f, {"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
          "close", "close_range", "lseek", "fcntl", "dup", "dup2", "dup3", "fstat", "newfstatat", "statx",
          "sendmsg", "recvmsg", "sendto", "recvfrom", "sendmmsg", "recvmmsg", "shutdown", "getsockopt",
          "setsockopt"});
  add(f, {"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select",
          "pselect6", "eventfd2", "pipe2"});
  add(f, {"exit", "exit_group"});
  // isatty() of glibc's stdio; non-blocking and pending-byte queries.
  f.allowed_ioctls = {TCGETS, FIONBIO, FIONREAD, FIOCLEX};
}

// Reading, writing and naming files beneath a directory held open.
void add_files(jail::SyscallFilter& f) {
  add(f, {"openat", "open", "creat", "getdents64", "readlinkat", "readlink", "faccessat", "faccessat2", "access",
          "stat", "lstat", "mkdirat", "mkdir", "unlinkat", "unlink", "rmdir", "renameat", "renameat2", "rename",
          "linkat", "symlinkat", "ftruncate", "fallocate", "fsync", "fdatasync", "syncfs", "fstatfs", "statfs",
          "fchmod", "fchmodat", "chmod", "utimensat", "copy_file_range", "umask", "flock"});
}

}  // namespace

jail::SyscallFilter shim_syscall_filter() {
  jail::SyscallFilter f;
  f.who = "moat-shim";
  add_runtime(f);
  add_files(f);
  // Clients, the agent channel, host sockets of the network, DNS.
  add(f, {"socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "getsockname",
          "getpeername"});
  // SQLite (network events into moat.db) gives a journal it creates as root
  // the database's owner.
  add(f, {"fchown"});
  // The event loop's own descriptors; QEMU's end.
  add(f, {"signalfd4", "timerfd_create", "timerfd_settime", "timerfd_gettime", "pidfd_send_signal", "wait4",
          "waitid"});
  return f;
}

jail::SyscallFilter volume_server_syscall_filter(const std::string& who) {
  jail::SyscallFilter f;
  f.who = who;
  add_runtime(f);
  add_files(f);
  // Guest owners and modes live in user xattrs (fs/dir_ownership.h); the
  // guest's own xattrs pass through. Identities of files are their handles.
  add(f, {"getxattr", "setxattr", "listxattr", "removexattr", "lgetxattr", "lsetxattr", "llistxattr",
          "lremovexattr", "fgetxattr", "fsetxattr", "flistxattr", "fremovexattr", "name_to_handle_at", "mknodat",
          "mknod"});
  return f;
}

jail::SyscallFilter root_reader_syscall_filter() {
  jail::SyscallFilter f;
  f.who = "moat-root-reader";
  add_runtime(f);
  add(f, {"fadvise64"});
  return f;
}

}  // namespace moat::shim
