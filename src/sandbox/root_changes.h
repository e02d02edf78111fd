// Reading a sandbox's root from its disks (diff, export, commit): the
// sandbox locked, a running one's upper copied while frozen, then the
// confined root reader run over the upper and the lower.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "sandbox/lifecycle.h"

namespace moat::sandbox {

// Runs the root reader in `mode` over the sandbox's disks; `record`, if
// given, receives the sandbox's record as it was read.
Status read_sandbox_root(const std::string& id_or_name, const std::string& mode,
                         const std::function<Status(std::string_view)>& on_output, SandboxRecord* record = nullptr);

}  // namespace moat::sandbox
