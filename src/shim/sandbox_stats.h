// What the shim answers a client's `stats` request with (include/moat/stats.h):
// memory and tasks from the sandbox's cgroup when QEMU has one, else from
// QEMU's own /proc entry; CPU time always from QEMU's /proc entry (its
// threads are the guest's vCPUs and devices; a v1 host may keep cpuacct in
// a hierarchy the group is not in); the network from the shim's stack.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "jail/cgroup.h"
#include "moat/stats.h"
#include "netstack/network_service.h"

namespace moat::shim {

// `group` and `network` may be null (none made).
SandboxStats collect_sandbox_stats(const jail::Cgroup* group, pid_t qemu, const netstack::NetworkService* network,
                                   std::uint64_t uptime_ms);

}  // namespace moat::shim
