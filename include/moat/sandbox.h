// moat's C++ API: create a microVM sandbox, run commands in it, stop it.
//
//   auto sb = moat::Sandbox::create({.rootfs_dir = "/srv/rootfs"});
//   moat::ExecIo io;
//   io.on_stdout = [](std::string_view s) { fwrite(s.data(), 1, s.size(), stdout); };
//   auto st = sb->exec({.argv = {"echo", "hi"}}, io);
//   sb->stop();
//
// A Sandbox handle runs one exec at a time; open more handles to the same
// sandbox (Sandbox::open) to run several at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "moat/result.h"

namespace moat {

struct SandboxOptions {
  // The root filesystem: a host directory (packed into a cached ext4 image),
  // or an image file (ext4 or EROFS). Neither: the bundled default image.
  std::string rootfs_dir;
  std::string rootfs_image;
  // Boot rootfs_image itself as the only, writable root (ext4 only) instead
  // of a read-only lower under a fresh writable upper.
  bool writable_root = false;
  int cpus = 1;
  int memory_mib = 256;
  std::uint64_t disk_size_mib = 4096;  // the writable upper disk (sparse)
  std::string accel = "auto";          // auto | kvm | tcg
  std::string hostname;                // default: "moat-" + id
  int boot_timeout_ms = 60000;
  // Stop the sandbox when the handle that created it is closed (or its
  // process dies). `moat run` uses this; `moat create` does not.
  bool ephemeral = false;
};

struct Rlimit {
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};

struct ExecOptions {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // KEY=VALUE, on top of PATH/HOME/TERM defaults
  std::string cwd;               // default "/"
  std::string user;              // "", "name", "uid", "uid:gid", "name:group"
  bool tty = false;
  std::uint16_t rows = 24;
  std::uint16_t cols = 80;
  bool stdin_open = false;       // otherwise the command reads /dev/null
  std::uint64_t timeout_ms = 0;  // 0: no limit
  std::map<std::string, Rlimit> rlimits;  // "nofile", "nproc", "as", ...
};

struct ExitStatus {
  int code = 0;
  int signal = 0;  // the signal that ended the command, 0 if it exited
  bool timed_out = false;
  // As a shell reports it: the code, or 128 + signal.
  int shell_code() const { return signal ? 128 + signal : code; }
};

// Where an exec's streams go. Callbacks run on the thread calling exec().
struct ExecIo {
  int stdin_fd = -1;  // read to EOF as the command's stdin (with stdin_open)
  std::function<void(std::string_view)> on_stdout;
  std::function<void(std::string_view)> on_stderr;
  // Optional pipe of single-byte events: a byte N > 0 forwards signal N to
  // the command; 0 means "terminal resized", answered by on_resize.
  int event_fd = -1;
  std::function<std::pair<std::uint16_t, std::uint16_t>()> on_resize;  // rows, cols
  std::function<void(int pid)> on_started;
};

class Sandbox {
 public:
  // Boots a new sandbox and returns once it runs commands.
  static Result<Sandbox> create(const SandboxOptions& options);
  // Attaches to a running sandbox by id.
  static Result<Sandbox> open(const std::string& id);

  Sandbox(Sandbox&&) noexcept;
  Sandbox& operator=(Sandbox&&) noexcept;
  ~Sandbox();

  const std::string& id() const;
  // Accelerator in use and why it was chosen (set by create()).
  const std::string& accel_reason() const;

  Result<ExitStatus> exec(const ExecOptions& options, ExecIo& io);

  // Asks the guest to power off (filesystems synced), kills the VM if it has
  // not within timeout_ms, and waits until nothing of the sandbox remains.
  Status stop(int timeout_ms = 10000);

 private:
  struct Impl;
  explicit Sandbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat
