// The keeper: the host process an engine sees as the container's process.
//
// Engines (conmon, containerd's shim) take the pid `create` writes to
// --pid-file, wait for that process as its subreaper, and report its exit
// as the container's: so it must live exactly as long as the process in the
// guest and end the same way. moat-runtime starts itself again as the keeper
// (`moat-runtime keep`, a fresh image rather than a fork of a process that
// holds libmoat's threads), with the container's stdio as its own:
//
//   1. With a console socket, it makes a pty pair, sends the master to the
//      socket (SCM_RIGHTS, as runc does) and makes the slave its controlling
//      terminal and stdio, in raw mode: the guest's pty does the line
//      discipline, the host one only carries bytes and the window size.
//   2. It connects to the sandbox, then reports "ok" (or the error) on fd 3,
//      which its starter reads before writing the pid file.
//   3. An init keeper waits on start.fifo for `start`; a signal that ends a
//      process ends it there as if the container had been killed.
//   4. It runs the process in the guest: its stdin is read to the command's,
//      the command's output written to its stdout and stderr, each signal it
//      gets sent to the command (SIGWINCH as the new window size).
//   5. When the command ends, an init keeper stops the VM (the container is
//      over), then exits with the command's code, or kills itself with the
//      command's signal.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "moat/exec.h"
#include "moat/result.h"

namespace moat::oci {

struct KeeperSpec {
  // libmoat sandbox id; "" for a pod's sandbox container: the keeper only
  // holds its namespaces, as a pause process does, until TERM or INT
  // (exit 0) or KILL.
  std::string sandbox;
  ExecOptions process;          // argv, env, cwd, user, tty, size, rlimits
  bool wait_for_start = false;  // the init keeper: wait on start_fifo
  std::string start_fifo;
  // Made once the process runs in the guest (or, for a pod's sandbox
  // container, once started): `start` returns only then, so a signal an
  // engine sends right after it reaches the program, not an exec in flight.
  std::string running_marker;
  bool stop_sandbox_on_exit = false;
  std::string console_socket;   // "" : no terminal from the engine
};

std::string keeper_spec_json(const KeeperSpec& spec);
Result<KeeperSpec> parse_keeper_spec(const std::string& text);

// The keeper's whole life; returns only on an error before the command ran
// (the code to exit with). `ready_fd` is fd 3 as the starter passed it.
int run_keeper(const KeeperSpec& spec, int ready_fd);

// Starts `self` (this binary) as the keeper of `spec_path` with the caller's
// stdio and waits for its report: its pid, or the error it reported.
Result<pid_t> spawn_keeper(const std::string& self, const std::string& root, const std::string& spec_path);

}  // namespace moat::oci
