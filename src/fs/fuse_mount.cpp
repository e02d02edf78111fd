#include "fs/fuse_mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "util/subprocess.h"

namespace moat::fs {
namespace {

Result<UniqueFd> mount_as_root(const std::string& dir, const FuseMountOptions& o) {
  UniqueFd fd(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!fd) return errno_error("open /dev/fuse");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return errno_error("stat " + dir);
  if (!S_ISDIR(st.st_mode)) return make_error(dir + ": not a directory", ENOTDIR);
  std::string data = "fd=" + std::to_string(fd.get()) + ",rootmode=40000,user_id=" +
                     std::to_string(::getuid()) + ",group_id=" + std::to_string(::getgid()) +
                     ",allow_other,default_permissions";
  unsigned long flags = MS_NOSUID | MS_NODEV | (o.read_only ? MS_RDONLY : 0);
  std::string type = "fuse." + o.subtype;
  if (::mount(o.source.c_str(), dir.c_str(), type.c_str(), flags, data.c_str()) != 0) {
    return errno_error("mount fuse at " + dir);
  }
  return fd;
}

// Receives one descriptor sent with SCM_RIGHTS.
Result<UniqueFd> receive_fd(int sock) {
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_error("receive /dev/fuse descriptor");
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (n == 0 || !c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
      c->cmsg_len != CMSG_LEN(sizeof(int))) {
    return make_error("fusermount3 sent no descriptor", EIO);
  }
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return UniqueFd(fd);
}

Result<UniqueFd> mount_with_fusermount(const std::string& dir, const FuseMountOptions& o) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return errno_error("socketpair");
  UniqueFd ours(sv[0]), theirs(sv[1]);
  std::string opts = std::string(o.read_only ? "ro" : "rw") + ",nosuid,nodev,default_permissions,subtype=" +
                     o.subtype + ",fsname=" + o.source;
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    int fd = ::dup(theirs.get());  // without CLOEXEC
    std::string env = std::to_string(fd);
    ::setenv("_FUSE_COMMFD", env.c_str(), 1);
    ::execlp("fusermount3", "fusermount3", "-o", opts.c_str(), "--", dir.c_str(), nullptr);
    ::_exit(127);
  }
  theirs.reset();
  auto fd = receive_fd(ours.get());
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return make_error("fusermount3 failed (exit " + std::to_string(WEXITSTATUS(status)) +
                      "; is the fuse3 package installed?)", EIO);
  }
  return fd;
}

}  // namespace

Result<UniqueFd> fuse_mount(const std::string& dir, const FuseMountOptions& options) {
  if (::geteuid() == 0) return mount_as_root(dir, options);
  return mount_with_fusermount(dir, options);
}

Status fuse_unmount(const std::string& dir, bool lazy) {
  if (::geteuid() == 0) {
    if (::umount2(dir.c_str(), lazy ? MNT_DETACH : 0) != 0) return errno_error("umount " + dir);
    return ok_status();
  }
  std::vector<std::string> argv{"fusermount3", "-u"};
  if (lazy) argv.push_back("-z");
  argv.push_back("--");
  argv.push_back(dir);
  return run_checked(argv);
}

}  // namespace moat::fs
