// The client side of one exec stream: sends the request, feeds stdin within
// the agent's window, hands output to the caller and grants window for it,
// forwards signals and resizes, and returns the exit status.
#pragma once

#include "moat/sandbox.h"
#include "proto/exec.h"
#include "sandbox/agent_connection.h"

namespace moat::sandbox {

proto::ExecRequest to_request(const ExecOptions& o);

Result<ExitStatus> run_exec(AgentConnection& conn, const ExecOptions& options, ExecIo& io);

}  // namespace moat::sandbox
