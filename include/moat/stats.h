// What a running sandbox uses now: `moat stats`, Sandbox::stats() and
// sandbox_stats(). Counters are cumulative since the sandbox's boot; a rate
// (CPU %, bytes per second) is the difference of two samples over the
// difference of their `sampled_ns`.
#pragma once

#include <cstdint>
#include <string>

#include "moat/result.h"

namespace moat {

struct SandboxStats {
  // Where the memory, CPU and task numbers come from: "cgroup v2" or
  // "cgroup v1" (the sandbox's own group: QEMU, the guest and its devices),
  // or "process" (no group could be made: QEMU's own counters, whose memory
  // is its resident set).
  std::string source;
  std::uint64_t cpu_ns = 0;              // CPU time used
  std::uint64_t memory_bytes = 0;        // memory charged now
  std::uint64_t memory_limit_bytes = 0;  // 0: no limit
  std::uint64_t pids = 0;                // tasks (QEMU's threads)
  std::uint64_t pids_limit = 0;          // 0: no limit
  std::uint64_t oom_kills = 0;           // times the memory limit made the kernel kill
  // The guest's network, as the guest sees it (tx: sent by the guest).
  // All zero without a network device.
  std::uint64_t net_tx_bytes = 0;
  std::uint64_t net_rx_bytes = 0;
  std::uint64_t net_tx_packets = 0;
  std::uint64_t net_rx_packets = 0;
  // Connections open now through the sandbox's network policy: TCP
  // connections and UDP flows (a DNS lookup answered by the sandbox's own
  // resolver is not one).
  std::uint64_t net_connections = 0;
  // The host's side: what the sandbox's processes (QEMU and its shim) hold
  // resident, and what its writable disk takes on the host's filesystem
  // (allocated blocks; the disk is sparse) out of the size the guest sees.
  std::uint64_t host_rss_bytes = 0;
  std::uint64_t disk_bytes = 0;
  std::uint64_t disk_size_bytes = 0;
  // The guest's own view of its memory, from its /proc/meminfo: total, and
  // used (total less what it could make available). Both zero when the
  // guest did not answer in time (a hung or very busy guest).
  std::uint64_t guest_memory_total_bytes = 0;
  std::uint64_t guest_memory_used_bytes = 0;
  std::uint64_t execs = 0;       // commands started since the VM was started
  std::uint64_t uptime_ms = 0;   // since the VM was started
  std::uint64_t sampled_ns = 0;  // the host's monotonic clock when taken
};

// The stats of a running sandbox, asked of its shim; ESRCH when it is not
// running.
Result<SandboxStats> sandbox_stats(const std::string& id_or_name);

}  // namespace moat
