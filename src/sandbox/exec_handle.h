// The client side of exec streams: moat::Exec handles (include/moat/exec.h)
// and the blocking run of Sandbox::exec() over the same machinery.
#pragma once

#include "moat/exec.h"
#include "moat/sandbox.h"
#include "proto/exec.h"
#include "sandbox/agent_connection.h"
#include "sandbox/exec_request.h"

namespace moat::sandbox {

// Starts a command on a connection of its own, which the handle keeps.
Result<Exec> start_exec(AgentConnection conn, const ExecOptions& options, const ExecCallbacks& callbacks);

// Runs a command to its end on a borrowed connection, feeding it
// io.stdin_fd to end of file.
Result<ExitStatus> run_exec(AgentConnection& conn, const ExecOptions& options, ExecIo& io);

}  // namespace moat::sandbox
