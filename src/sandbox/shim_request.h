// One control request to a running sandbox's shim, on a connection of its
// own, and the shim's answer to it: the next `ok` or `error` on the control
// stream (proto/message.h). Used by the requests that change a running
// sandbox: network_update, pause, resume.
#pragma once

#include <string>

#include "proto/message.h"
#include "sandbox/agent_connection.h"
#include "util/result.h"

namespace moat::sandbox {

// `name` names the sandbox in errors, `dir` is its directory, `what` the
// request in a timeout's message ("the network update"). An `error` answer
// becomes an Error with the errno its code names (EIO for other codes;
// ENOSYS for a shim too old to know the request).
Status ask_shim(const std::string& name, const std::string& dir, const proto::Message& request,
                const std::string& what);
// The same on a connection the caller holds (the shim ties some requests
// to it: pause's resume_on_leave).
Status ask_shim_on(AgentConnection& conn, const std::string& name, const proto::Message& request,
                   const std::string& what);

}  // namespace moat::sandbox
