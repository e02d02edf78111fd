// What the shim answers a client's `stats` request with (include/moat/stats.h):
// memory and tasks from the sandbox's cgroup when QEMU has one, else from
// QEMU's own /proc entry; CPU time always from QEMU's /proc entry (its
// threads are the guest's vCPUs and devices; a v1 host may keep cpuacct in
// a hierarchy the group is not in); the network from the shim's stack.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "jail/cgroup.h"
#include "moat/stats.h"
#include "netstack/network_service.h"

namespace moat::shim {

struct StatsSources {
  const jail::Cgroup* group = nullptr;                // null: none made
  pid_t qemu = -1;                                    // -1: not running
  const netstack::NetworkService* network = nullptr;  // null: no device
  std::vector<std::string> writable_disks;            // host paths
  std::uint64_t uptime_ms = 0;
  std::uint64_t execs = 0;
};

// Everything the host knows; the guest's memory is added by
// add_guest_memory once the agent answers.
SandboxStats collect_sandbox_stats(const StatsSources& from);

// The agent's `stats` answer ({"mem_total_bytes", "mem_available_bytes"},
// proto/message.h) into `stats`. The guest's word: a field that is not a
// count is ignored, and used never exceeds total.
void add_guest_memory(SandboxStats& stats, const nlohmann::json& agent_answer);

}  // namespace moat::shim
