// Starts a sandbox's shim detached from the caller (its own session, not our
// child) and waits for it to report that the guest is ready.
#pragma once

#include <sys/types.h>

#include <string>

#include "util/result.h"

namespace moat::sandbox {

// Runs `shim_path SANDBOX_DIR --ready-fd N`, waits up to wait_ms for its
// verdict, and returns the shim's pid once it says "ok".
Result<pid_t> launch_shim(const std::string& shim_path, const std::string& sandbox_dir, int wait_ms);

}  // namespace moat::sandbox
