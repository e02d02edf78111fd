// The payload of the shim's `stats` reply (proto/message.h), the one JSON
// form of SandboxStats (include/moat/stats.h):
//
//   {"source": "cgroup v1", "cpu_ns": 123, "memory_bytes": 1, "memory_limit_bytes": 2,
//    "pids": 3, "pids_limit": 512, "oom_kills": 0, "net_tx_bytes": 0, "net_rx_bytes": 0,
//    "net_tx_packets": 0, "net_rx_packets": 0, "uptime_ms": 10}
//
// `sampled_ns` is not sent: the reader's clock stamps the sample. Reading
// checks every field's type; a missing counter reads as 0.
#pragma once

#include <nlohmann/json.hpp>

#include "moat/stats.h"
#include "util/result.h"

namespace moat::shim {

nlohmann::json stats_to_json(const SandboxStats& stats);
Result<SandboxStats> stats_from_json(const nlohmann::json& j);

}  // namespace moat::shim
