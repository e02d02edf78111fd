#include "shim/sandbox_stats.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <cstdlib>
#include <sstream>
#include <string>

#include "jail/cgroup.h"
#include "util/read_file.h"

namespace moat::shim {
namespace {

// /proc/PID/stat and status are a few KiB; "" when QEMU is gone.
std::string read_proc(pid_t pid, const char* name) {
  auto text = read_file_bounded("/proc/" + std::to_string(pid) + "/" + name, 64 * 1024);
  return text.ok() ? *text : std::string();
}

// utime + stime of every thread of `pid`, from /proc/PID/stat: fields 14
// and 15, counted after the command name's closing parenthesis (the name
// may hold spaces and parentheses itself).
std::uint64_t cpu_ns_of(pid_t pid) {
  std::string stat = read_proc(pid, "stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  std::uint64_t utime = 0, stime = 0;
  // After ")": state is field 3, so utime (14) is the 12th word.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) ticks = 100;
  return (utime + stime) * (1000000000ull / static_cast<std::uint64_t>(ticks));
}

// A "Name:   value kB" line of /proc/PID/status, as a number (kB as bytes).
std::uint64_t status_value(const std::string& status, const std::string& name) {
  std::istringstream lines(status);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + ":", 0) != 0) continue;
    std::uint64_t v = std::strtoull(line.c_str() + name.size() + 1, nullptr, 10);
    return line.find(" kB") != std::string::npos ? v * 1024 : v;
  }
  return 0;
}

std::string read_proc_self_status() {
  auto text = read_file_bounded("/proc/self/status", 64 * 1024);
  return text.ok() ? *text : std::string();
}

// A count the guest sent, or 0.
std::uint64_t guest_count(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_integer()) return 0;
  return it->is_number_unsigned() || it->get<std::int64_t>() >= 0 ? it->get<std::uint64_t>() : 0;
}

}  // namespace

void add_guest_memory(SandboxStats& stats, const nlohmann::json& agent_answer) {
  if (!agent_answer.is_object()) return;
  std::uint64_t total = guest_count(agent_answer, "mem_total_bytes");
  std::uint64_t available = guest_count(agent_answer, "mem_available_bytes");
  stats.guest_memory_total_bytes = total;
  stats.guest_memory_used_bytes = total - std::min(available, total);
}

SandboxStats collect_sandbox_stats(const StatsSources& from) {
  const jail::Cgroup* group = from.group;
  pid_t qemu = from.qemu;
  SandboxStats s;
  s.uptime_ms = from.uptime_ms;
  s.execs = from.execs;
  s.host_rss_bytes = status_value(read_proc_self_status(), "VmRSS");
  if (qemu > 0) s.host_rss_bytes += status_value(read_proc(qemu, "status"), "VmRSS");
  for (const auto& path : from.writable_disks) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    s.disk_bytes += static_cast<std::uint64_t>(st.st_blocks) * 512;
    s.disk_size_bytes += static_cast<std::uint64_t>(st.st_size);
  }
  s.cpu_ns = qemu > 0 ? cpu_ns_of(qemu) : 0;
  if (group != nullptr) {
    s.source = group->version() == jail::CgroupVersion::kV2 ? "cgroup v2" : "cgroup v1";
    s.memory_bytes = group->memory_used();
    s.memory_limit_bytes = group->memory_limit();
    s.pids = group->tasks();
    s.pids_limit = group->pids_limit();
    s.oom_kills = group->oom_kills();
  } else if (qemu > 0) {
    s.source = "process";
    std::string status = read_proc(qemu, "status");
    s.memory_bytes = status_value(status, "VmRSS");
    s.pids = status_value(status, "Threads");
  }
  if (from.network != nullptr) {
    auto t = from.network->traffic();
    s.net_tx_bytes = t.tx_bytes;
    s.net_rx_bytes = t.rx_bytes;
    s.net_tx_packets = t.tx_packets;
    s.net_rx_packets = t.rx_packets;
    s.net_connections = t.open_flows;
  }
  return s;
}

}  // namespace moat::shim
