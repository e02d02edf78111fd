// /metrics in Prometheus' text exposition format (version 0.0.4): one
// series per running sandbox, labelled by its id and name, and the server's
// own counters.
#pragma once

#include <string>
#include <vector>

#include "moat/sandboxes.h"
#include "moat/stats.h"
#include "server/server_state.h"

namespace moat::server {

struct SandboxSample {
  SandboxInfo info;
  SandboxStats stats;
};

// `all`: every sandbox (for the per-state counts); `samples`: the running
// ones whose stats could be read.
std::string metrics_text(const std::vector<SandboxInfo>& all, const std::vector<SandboxSample>& samples,
                         const ServerCounters& counters);

// A label value escaped as the format wants (\\, \", \n).
std::string label_value(const std::string& text);

}  // namespace moat::server
