// Starts one process for an exec request: pipes or a pty, its own session
// and process group, credentials, limits, environment, working directory.
#pragma once

#include <sys/types.h>

#include <string>

#include "agent/user_db.h"
#include "proto/exec.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::agent {

struct SpawnedProcess {
  pid_t pid = -1;
  UniqueFd stdin_fd;   // write end; invalid if stdin is /dev/null (or pty: see master)
  UniqueFd stdout_fd;  // read end; the pty master when tty
  UniqueFd stderr_fd;  // read end; invalid when tty (merged into the pty)
  UniqueFd master_fd;  // pty master (tty only), for writes and resize
};

// The environment the process gets: defaults (PATH, HOME, TERM for a tty,
// HOSTNAME) overridden by the request's entries.
std::vector<std::string> build_environment(const proto::ExecRequest& req, const Credentials& cred);

Result<SpawnedProcess> spawn_process(const proto::ExecRequest& req, const Credentials& cred);

}  // namespace moat::agent
