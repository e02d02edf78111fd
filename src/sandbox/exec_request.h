// ExecOptions as the exec request the agent receives (proto/exec.h). Pure
// data, apart from the handles in exec_handle.cpp, so the option readers
// (src/json) and their fuzz target can check a command without linking the
// sandbox library.
#pragma once

#include "moat/exec.h"
#include "proto/exec.h"

namespace moat::sandbox {

proto::ExecRequest to_request(const ExecOptions& o);

}  // namespace moat::sandbox
