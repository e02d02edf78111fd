// Commands in a sandbox: what to run (ExecOptions), how it ended
// (ExitStatus), and a handle on a running command (Exec).
//
//   auto sb = moat::Sandbox::open("web");
//   moat::ExecCallbacks cb;
//   cb.on_stdout = [](std::string_view s) { fwrite(s.data(), 1, s.size(), stdout); };
//   auto ex = sb->start_exec({.argv = {"cat"}, .stdin_open = true}, cb);
//   ex->write_stdin("hello\n");
//   ex->close_stdin();
//   auto st = ex->wait();          // Result<std::optional<ExitStatus>>
//
// Sandbox::exec() (sandbox.h) is the blocking helper over the same handle.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "moat/duration.h"
#include "moat/result.h"

namespace moat {

struct Rlimit {
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};

// A process's capability sets (capabilities(7)), each a bit mask: bit N is
// capability N of <linux/capability.h> (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE
// = 40). What an OCI runtime's process.capabilities asks for.
struct CapabilitySets {
  std::uint64_t bounding = 0;
  std::uint64_t effective = 0;
  std::uint64_t permitted = 0;
  std::uint64_t inheritable = 0;
  std::uint64_t ambient = 0;
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
  Duration timeout{0};           // zero: no limit
  std::map<std::string, Rlimit> rlimits;  // "nofile", "nproc", "as", ...
  // Unset: what the user gets by default in the guest (every capability for
  // root, none for others). Set: the bounding set is cut to `bounding`
  // before the user changes, then the sets are applied, as runc does (a
  // root process gets its bounding set back as effective on exec, as the
  // kernel gives root).
  std::optional<CapabilitySets> capabilities;
  bool no_new_privileges = false;  // PR_SET_NO_NEW_PRIVS before exec
};

struct ExitStatus {
  int code = 0;
  int signal = 0;  // the signal that ended the command, 0 if it exited
  bool timed_out = false;
  // As a shell reports it: the code, or 128 + signal.
  int shell_code() const { return signal ? 128 + signal : code; }
};

// Checks options against the protocol's limits without a sandbox (argument
// and variable counts and lengths; the whole request at most 1 MiB), so a
// caller can refuse them before booting anything. Starting a command checks
// them too.
Status check_exec_options(const ExecOptions& options);

// Where a started command's output goes. The callbacks run on the thread
// that is reading the command's stream at the time: the one in Exec::wait(),
// or one in Exec::write_stdin() waiting for the command to read its input.
// They may call the Exec's input and control methods.
struct ExecCallbacks {
  std::function<void(std::string_view)> on_stdout;
  std::function<void(std::string_view)> on_stderr;
  std::function<void(int pid)> on_started;  // the command's pid in the guest
};

// One piece of what a command sends back, for the pull interface
// (Exec::read), in the order the guest sent it.
struct ExecOutput {
  enum class Kind { kStdout, kStderr, kExit };
  Kind kind = Kind::kStdout;
  std::string data;   // kStdout, kStderr
  ExitStatus status;  // kExit: the last piece
};

// A command running in a sandbox, on its own connection: any number of them
// may run at once on one sandbox. Destroying the handle of a command that has
// not ended kills it (its process group) in the guest.
//
// Threads: the input and control methods (write_stdin, close_stdin, signal,
// resize, kill, cancel) may be called from any thread, also while another
// thread waits. wait() and read() are for one thread at a time.
//
// The guest is not trusted to answer: with ExecOptions::timeout the host
// stops waiting 5 s after the timeout (wait() fails with ETIMEDOUT); after a
// signal that ends commands (SIGINT, SIGTERM, SIGHUP, SIGKILL), 10 s without
// a word from the guest stops the wait (EINTR). Either cancels the command.
class Exec {
 public:
  Exec(Exec&&) noexcept;
  Exec& operator=(Exec&&) noexcept;
  ~Exec();

  // The command's pid in the guest once it started, else 0.
  int pid() const;

  // Sends bytes to the command's stdin (ExecOptions::stdin_open). Blocks while
  // the command has not read what was sent before (the guest grants window),
  // reading the command's output meanwhile if no other thread does. Fails
  // with EPIPE once stdin is closed or the command ended.
  Status write_stdin(std::string_view bytes);
  // The command reads end of file once it has read what was sent.
  Status close_stdin();
  // Sends a signal to the command (its process group).
  Status signal(int sig);
  Status kill();
  // The terminal's new size (ExecOptions::tty).
  Status resize(std::uint16_t rows, std::uint16_t cols);
  // Stops waiting: a wait() or read() in progress or to come fails with
  // EINTR, and the command is cancelled in the guest (killed). For a caller
  // that gives up on a command that does not end after a signal.
  void cancel();

  // Reads the command's output into the callbacks until it ends (its status)
  // or `timeout` passes (an empty optional; none: as long as it takes).
  // Without callbacks, output no one read() is dropped.
  Result<std::optional<ExitStatus>> wait(std::optional<Duration> timeout = std::nullopt);
  // The pull interface, for a handle started without callbacks: the next
  // piece of output, ending with kExit; an empty optional when `timeout`
  // passed first. The guest sends more only as pieces are read.
  Result<std::optional<ExecOutput>> read(std::optional<Duration> timeout = std::nullopt);

  // Handles come from Sandbox::start_exec; Impl is the library's.
  struct Impl;
  explicit Exec(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat
