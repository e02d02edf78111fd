// Creating a sandbox from a disk snapshot (SandboxOptions::from_snapshot):
// the snapshot's root (its image by digest, or its lower disk) under a copy
// of its upper disk, checked against the digest recorded at create.
#pragma once

#include <string>

#include "sandbox/lifecycle.h"

namespace moat::sandbox {

Result<SandboxInfo> create_from_snapshot(Manager& m, const SandboxOptions& o, std::string* accel_reason);

}  // namespace moat::sandbox
