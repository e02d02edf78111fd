#include "cli/fs_commands.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/exit_codes.h"
#include "moat/mount.h"

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

// Serves until the filesystem is unmounted.
int serve_mount(ImageMount& mount) {
  Status st = mount.serve();
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
  auto mount = mount_image(f.image, f.dir, {.threads = f.threads});
  if (!mount.ok()) return fail(mount.error().message);
  if (f.foreground) return serve_mount(*mount);

  pid_t pid = ::fork();
  if (pid < 0) {
    (void)unmount_image(f.dir, true);
    return fail("fork: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {
    become_daemon();
    ::_exit(serve_mount(*mount));
  }
  // The child serves; this process's copy of the session goes.
  { ImageMount gone = std::move(*mount); }
  // The first stat of the mount point waits for INIT and GETATTR from the
  // server, so when it succeeds the mount works; if the server died, it
  // fails with ENOTCONN.
  struct stat st {};
  if (::stat(f.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    int err = errno;
    (void)unmount_image(f.dir, true);
    ::kill(pid, SIGTERM);
    return fail("mount at " + f.dir + " does not answer: " + std::strerror(err));
  }
  return 0;
}

int cmd_umount() {
  auto st = unmount_image(flags().dir, flags().lazy);
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
