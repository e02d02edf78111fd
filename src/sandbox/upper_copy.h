// A consistent copy of a sandbox's writable upper disk, whether it runs or
// not: what snapshots, forks (and later diff, export and commit) read.
#pragma once

#include <string>

#include "moat/duration.h"
#include "sandbox/lifecycle.h"

namespace moat::sandbox {

// The upper disk of a sandbox whose root is an overlay; EINVAL otherwise
// (a --writable-root sandbox has no upper).
Result<std::string> upper_disk_of(const SandboxRecord& r);

// Copies the upper disk of `r` to `to` (which must not exist), sparse or as a
// reflink. The caller holds the sandbox's operation lock, so it neither
// starts nor stops meanwhile. A running sandbox's upper filesystem is frozen
// for the copy (at most `freeze_limit`; the copy fails if it takes longer)
// and thawed after; a stopped one is copied as it lies.
Status copy_upper_disk(const Manager& m, const SandboxRecord& r, const std::string& to, Duration freeze_limit);
// The same without a freeze, for a disk nothing writes to now: a stopped
// sandbox's, or one whose vCPUs stand still after QEMU flushed it (a memory
// snapshot).
Status copy_upper_disk_as_it_lies(const SandboxRecord& r, const std::string& to);

}  // namespace moat::sandbox
