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

#include "util/fd_passing.h"
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

// Receives the one descriptor fusermount3 sends with SCM_RIGHTS.
Result<UniqueFd> receive_fd(int sock) {
  char byte;
  std::vector<UniqueFd> fds;
  Received r = receive_with_fds(sock, &byte, 1, 1, fds);
  if (r.bytes < 0) return errno_error("receive /dev/fuse descriptor", r.error);
  if (r.bytes == 0 || fds.size() != 1) return make_error("fusermount3 sent no descriptor", EIO);
  return std::move(fds.front());
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
