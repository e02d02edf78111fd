// moat_fs_dir_mount: serves a host directory through moat's FUSE core and
// the /dev/fuse transport, for the end-to-end test of the directory backend
// (dir_mount_test.sh). Not installed.
//
// usage: moat_fs_dir_mount [--ro] [--writeback] [--threads N] ROOT MOUNTPOINT
//
// Returns once the mount answers, leaving a background server that exits
// when MOUNTPOINT is unmounted (umount MOUNTPOINT). The server's errors go
// to this process's stderr.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fs/dir_backend.h"
#include "fs/fuse_mount.h"
#include "fs/fuse_server.h"
#include "fs/fuse_transport.h"

namespace {

int usage() {
  std::fprintf(stderr, "usage: moat_fs_dir_mount [--ro] [--writeback] [--threads N] ROOT MOUNTPOINT\n");
  return 2;
}

// Every node the kernel remembers holds a descriptor.
void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace moat;
  fs::DirBackendOptions options;
  fs::FuseServerOptions server_options;
  unsigned threads = 4;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; ++i) {
    std::string a = argv[i];
    if (a == "--ro") {
      options.read_only = true;
    } else if (a == "--writeback") {
      server_options.writeback_cache = true;
    } else if (a == "--threads" && i + 1 < argc) {
      threads = static_cast<unsigned>(std::atoi(argv[++i]));
    } else {
      return usage();
    }
  }
  if (argc - i != 2) return usage();
  std::string root = argv[i], dir = argv[i + 1];
  raise_fd_limit();

  auto backend = fs::open_dir_backend(root, options);
  if (!backend.ok()) {
    std::fprintf(stderr, "moat_fs_dir_mount: %s\n", backend.error().message.c_str());
    return 1;
  }
  fs::FuseMountOptions mount_options;
  mount_options.source = root;
  // The server refuses changes itself; the mount stays rw so that is tested.
  mount_options.read_only = false;
  auto fuse = fs::fuse_mount(dir, mount_options);
  if (!fuse.ok()) {
    std::fprintf(stderr, "moat_fs_dir_mount: %s\n", fuse.error().message.c_str());
    return 1;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    (void)fs::fuse_unmount(dir, true);
    std::perror("fork");
    return 1;
  }
  if (pid == 0) {
    ::setsid();
    fs::FuseServer server(**backend, server_options);
    fs::DevFuseTransport transport(fuse->get());
    Status st = fs::serve(server, transport, threads);
    if (!st.ok()) {
      std::fprintf(stderr, "moat_fs_dir_mount: %s\n", st.error().message.c_str());
      ::_exit(1);
    }
    ::_exit(0);
  }
  fuse->reset();
  // The first stat waits for INIT and the root's GETATTR.
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    int err = errno;
    (void)fs::fuse_unmount(dir, true);
    ::kill(pid, SIGTERM);
    std::fprintf(stderr, "moat_fs_dir_mount: mount at %s does not answer: %s\n", dir.c_str(),
                 std::strerror(err));
    return 1;
  }
  return 0;
}
