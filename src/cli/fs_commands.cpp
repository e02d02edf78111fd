#include "cli/fs_commands.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "cli/exit_codes.h"
#include "fs/erofs_backend.h"
#include "fs/fuse_mount.h"
#include "fs/fuse_server.h"
#include "fs/fuse_transport.h"
#include "image/erofs_reader.h"
#include "moat/images.h"

namespace moat::cli {
namespace {

// moat's own failures exit 125, as everywhere in the CLI (README).
constexpr int kExitFailure = kExitMoatError;

struct FsFlags {
  CLI::App* mount = nullptr;
  CLI::App* umount = nullptr;
  std::string image;
  std::string dir;
  bool passthrough = false;
  bool foreground = false;
  bool lazy = false;
  unsigned threads = 0;
};

FsFlags& flags() {
  static FsFlags f;
  return f;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "moat: %s\n", message.c_str());
  return kExitFailure;
}

unsigned worker_count() {
  if (flags().threads) return flags().threads;
  return std::clamp(std::thread::hardware_concurrency(), 2u, 8u);
}

// Serves until the filesystem is unmounted.
int serve_mount(fs::ErofsBackend& backend, UniqueFd fuse) {
  fs::FuseServer server(backend);
  fs::DevFuseTransport transport(fuse.get());
  Status st = fs::serve(server, transport, worker_count());
  if (!st.ok()) return fail(st.error().message);
  return 0;
}

// Detaches from the terminal and the caller's session; errors after this
// point can only be seen in the mount failing.
void become_daemon() {
  ::setsid();
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::close(null);
  }
  if (::chdir("/") != 0) {
    // Keeps the old directory; harmless.
  }
}

int cmd_mount() {
  auto& f = flags();
  if (f.passthrough) {
    // Passthrough hands the kernel one backing file per open file; an
    // image's files are ranges inside one file, which it cannot express.
    return fail("--passthrough is not supported for EROFS images (files are not separate host files)");
  }
  auto path = image_root_file(f.image);
  if (!path.ok()) return fail(path.error().message);
  auto reader = image::ErofsReader::open(*path);
  if (!reader.ok()) return fail(reader.error().message);
  fs::ErofsBackend backend(std::move(*reader));

  fs::FuseMountOptions options;
  options.source = *path;
  auto fuse = fs::fuse_mount(f.dir, options);
  if (!fuse.ok()) return fail(fuse.error().message);
  if (f.foreground) return serve_mount(backend, std::move(*fuse));

  pid_t pid = ::fork();
  if (pid < 0) {
    (void)fs::fuse_unmount(f.dir, true);
    return fail("fork: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {
    become_daemon();
    ::_exit(serve_mount(backend, std::move(*fuse)));
  }
  fuse->reset();
  // The first stat of the mount point waits for INIT and GETATTR from the
  // server, so when it succeeds the mount works; if the server died, it
  // fails with ENOTCONN.
  struct stat st {};
  if (::stat(f.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    int err = errno;
    (void)fs::fuse_unmount(f.dir, true);
    ::kill(pid, SIGTERM);
    return fail("mount at " + f.dir + " does not answer: " + std::strerror(err));
  }
  return 0;
}

int cmd_umount() {
  auto st = fs::fuse_unmount(flags().dir, flags().lazy);
  if (!st.ok()) return fail(st.error().message);
  return 0;
}

}  // namespace

void register_fs_commands(CLI::App& app) {
  auto& f = flags();
  CLI::App* image = app.get_subcommand("image");
  f.mount = image->add_subcommand("mount", "Mount an EROFS image (a path or a pulled reference) read-only with moat's FUSE server");
  f.mount->add_option("image", f.image, "EROFS image file or image reference")->required();
  f.mount->add_option("dir", f.dir, "Mount point (an existing directory)")->required();
  f.mount->add_flag("--passthrough", f.passthrough, "FUSE passthrough for file data (not supported for images)");
  f.mount->add_flag("--foreground", f.foreground, "Serve in this process until unmounted (debugging)");
  f.mount->add_option("--threads", f.threads, "Worker threads (default: CPUs, 2..8)");
  f.umount = image->add_subcommand("umount", "Unmount a directory mounted with `moat image mount`");
  f.umount->add_option("dir", f.dir, "Mount point")->required();
  f.umount->add_flag("--lazy", f.lazy, "Detach now, even if busy");
}

int run_fs_command() {
  auto& f = flags();
  if (f.mount && *f.mount) return cmd_mount();
  if (f.umount && *f.umount) return cmd_umount();
  return -1;
}

}  // namespace moat::cli
