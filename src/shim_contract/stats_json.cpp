#include "shim_contract/stats_json.h"

#include <cerrno>
#include <cstdint>
#include <utility>

namespace moat::shim {
namespace {

// Every counter, by its JSON name.
constexpr std::pair<const char*, std::uint64_t SandboxStats::*> kCounters[] = {
    {"cpu_ns", &SandboxStats::cpu_ns},
    {"memory_bytes", &SandboxStats::memory_bytes},
    {"memory_limit_bytes", &SandboxStats::memory_limit_bytes},
    {"pids", &SandboxStats::pids},
    {"pids_limit", &SandboxStats::pids_limit},
    {"oom_kills", &SandboxStats::oom_kills},
    {"net_tx_bytes", &SandboxStats::net_tx_bytes},
    {"net_rx_bytes", &SandboxStats::net_rx_bytes},
    {"net_tx_packets", &SandboxStats::net_tx_packets},
    {"net_rx_packets", &SandboxStats::net_rx_packets},
    {"net_connections", &SandboxStats::net_connections},
    {"host_rss_bytes", &SandboxStats::host_rss_bytes},
    {"disk_bytes", &SandboxStats::disk_bytes},
    {"disk_size_bytes", &SandboxStats::disk_size_bytes},
    {"guest_memory_total_bytes", &SandboxStats::guest_memory_total_bytes},
    {"guest_memory_used_bytes", &SandboxStats::guest_memory_used_bytes},
    {"execs", &SandboxStats::execs},
    {"uptime_ms", &SandboxStats::uptime_ms},
};

constexpr std::size_t kMaxSourceLength = 32;

}  // namespace

nlohmann::json stats_to_json(const SandboxStats& stats) {
  nlohmann::json j = nlohmann::json::object();
  j["source"] = stats.source;
  for (const auto& [name, field] : kCounters) j[name] = stats.*field;
  return j;
}

Result<SandboxStats> stats_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return make_error("stats: not an object", EINVAL);
  SandboxStats s;
  if (auto it = j.find("source"); it != j.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().size() > kMaxSourceLength)
      return make_error("stats: source is not a short string", EINVAL);
    s.source = it->get<std::string>();
  }
  for (const auto& [name, field] : kCounters) {
    auto it = j.find(name);
    if (it == j.end()) continue;
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0))
      return make_error(std::string("stats: ") + name + " is not a count", EINVAL);
    s.*field = it->get<std::uint64_t>();
  }
  return s;
}

}  // namespace moat::shim
