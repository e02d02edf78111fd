#include "server/metrics_text.h"

#include <cstdio>
#include <map>

namespace moat::server {
namespace {

struct Family {
  const char* name;
  const char* type;
  const char* help;
  double (*value)(const SandboxStats&);
};

const Family kSandboxFamilies[] = {
    {"moat_sandbox_cpu_seconds_total", "counter", "CPU time the sandbox's VM used.",
     [](const SandboxStats& s) { return static_cast<double>(s.cpu_ns) / 1e9; }},
    {"moat_sandbox_memory_bytes", "gauge", "Memory charged to the sandbox's VM now.",
     [](const SandboxStats& s) { return static_cast<double>(s.memory_bytes); }},
    {"moat_sandbox_memory_limit_bytes", "gauge", "The sandbox's memory limit (0: none).",
     [](const SandboxStats& s) { return static_cast<double>(s.memory_limit_bytes); }},
    {"moat_sandbox_tasks", "gauge", "Tasks (threads) of the sandbox's VM.",
     [](const SandboxStats& s) { return static_cast<double>(s.pids); }},
    {"moat_sandbox_oom_kills_total", "counter", "Times the memory limit made the kernel kill in the sandbox's group.",
     [](const SandboxStats& s) { return static_cast<double>(s.oom_kills); }},
    {"moat_sandbox_network_transmit_bytes_total", "counter", "Bytes the guest sent.",
     [](const SandboxStats& s) { return static_cast<double>(s.net_tx_bytes); }},
    {"moat_sandbox_network_receive_bytes_total", "counter", "Bytes the guest received.",
     [](const SandboxStats& s) { return static_cast<double>(s.net_rx_bytes); }},
    {"moat_sandbox_network_transmit_packets_total", "counter", "Packets the guest sent.",
     [](const SandboxStats& s) { return static_cast<double>(s.net_tx_packets); }},
    {"moat_sandbox_network_receive_packets_total", "counter", "Packets the guest received.",
     [](const SandboxStats& s) { return static_cast<double>(s.net_rx_packets); }},
    {"moat_sandbox_network_connections", "gauge", "TCP connections and UDP flows open through the policy now.",
     [](const SandboxStats& s) { return static_cast<double>(s.net_connections); }},
    {"moat_sandbox_host_resident_bytes", "gauge", "Host memory resident in the sandbox's QEMU and shim.",
     [](const SandboxStats& s) { return static_cast<double>(s.host_rss_bytes); }},
    {"moat_sandbox_guest_memory_bytes", "gauge", "Memory the guest's kernel counts as used (0: no answer).",
     [](const SandboxStats& s) { return static_cast<double>(s.guest_memory_used_bytes); }},
    {"moat_sandbox_guest_memory_total_bytes", "gauge", "Memory the guest's kernel has (0: no answer).",
     [](const SandboxStats& s) { return static_cast<double>(s.guest_memory_total_bytes); }},
    {"moat_sandbox_disk_bytes", "gauge", "Host bytes the sandbox's writable disk takes.",
     [](const SandboxStats& s) { return static_cast<double>(s.disk_bytes); }},
    {"moat_sandbox_disk_size_bytes", "gauge", "The size of the sandbox's writable disk as the guest sees it.",
     [](const SandboxStats& s) { return static_cast<double>(s.disk_size_bytes); }},
    {"moat_sandbox_execs_total", "counter", "Commands started in the sandbox since its VM started.",
     [](const SandboxStats& s) { return static_cast<double>(s.execs); }},
    {"moat_sandbox_uptime_seconds", "gauge", "Time since the sandbox's VM started.",
     [](const SandboxStats& s) { return static_cast<double>(s.uptime_ms) / 1e3; }},
};

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

void family_head(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string label_value(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string metrics_text(const std::vector<SandboxInfo>& all, const std::vector<SandboxSample>& samples,
                         const ServerCounters& counters) {
  std::string out;
  family_head(out, "moat_sandboxes", "gauge", "Sandboxes of this MOAT_HOME by state.");
  std::map<std::string, int> by_state{{"created", 0}, {"running", 0}, {"stopped", 0}, {"crashed", 0}};
  for (const auto& info : all) by_state[to_string(info.state)]++;
  for (const auto& [state, n] : by_state) out += "moat_sandboxes{state=\"" + state + "\"} " + std::to_string(n) + "\n";

  for (const Family& f : kSandboxFamilies) {
    family_head(out, f.name, f.type, f.help);
    for (const auto& s : samples)
      out += std::string(f.name) + "{id=\"" + label_value(s.info.id) + "\",name=\"" + label_value(s.info.name) +
             "\"} " + number(f.value(s.stats)) + "\n";
  }

  auto counter = [&](const char* name, const char* type, const char* help, std::uint64_t v) {
    family_head(out, name, type, help);
    out += std::string(name) + " " + std::to_string(v) + "\n";
  };
  counter("moat_server_requests_total", "counter", "HTTP requests the server answered.", counters.requests.load());
  counter("moat_server_client_errors_total", "counter", "Answers with a 4xx status.", counters.responses_4xx.load());
  counter("moat_server_server_errors_total", "counter", "Answers with a 5xx status.", counters.responses_5xx.load());
  counter("moat_server_connections", "gauge", "Client connections open now.", counters.connections.load());
  counter("moat_server_connections_shed_total", "counter", "Connections refused for being over the limit.",
          counters.connections_shed.load());
  counter("moat_server_requests_in_flight", "gauge", "Requests being handled now.", counters.in_flight.load());
  counter("moat_server_execs_started_total", "counter", "Commands started through the server.",
          counters.execs_started.load());
  counter("moat_server_exec_attaches", "gauge", "WebSockets attached to commands now.", counters.attaches.load());
  counter("moat_server_tls_handshake_failures_total", "counter", "TCP connections dropped in the TLS handshake.",
          counters.tls_handshake_failures.load());
  return out;
}

}  // namespace moat::server
