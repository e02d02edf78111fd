#include "cli/stats_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/exec_runner.h"
#include "cli/exit_codes.h"
#include "moat/json.h"
#include "cli/json_output.h"

namespace moat::cli {
namespace {

// The window CPU % is measured over.
constexpr auto kSampleGap = std::chrono::seconds(1);

struct Flags {
  CLI::App* stats = nullptr;
  std::vector<std::string> sandboxes;
  bool json = false;
};

Flags& flags() {
  static Flags f;
  return f;
}

// moat/json.h's form, with the name asked for and the CPU share measured.
nlohmann::json to_json(const std::string& name, const SandboxStats& s, double cpu) {
  nlohmann::json j = nlohmann::json::object();
  j["sandbox"] = name;
  j["cpu_percent"] = cpu;
  j.update(nlohmann::json::parse(to_json_text(s)));
  return j;
}

void print_row(const std::string& name, const SandboxStats& s, double cpu) {
  std::string memory = size_text(s.memory_bytes) + " / " + (s.memory_limit_bytes ? size_text(s.memory_limit_bytes) : "-");
  char mem_pct[16] = "-";
  if (s.memory_limit_bytes != 0)
    std::snprintf(mem_pct, sizeof mem_pct, "%.1f%%",
                  100.0 * static_cast<double>(s.memory_bytes) / static_cast<double>(s.memory_limit_bytes));
  std::string net = size_text(s.net_rx_bytes) + " / " + size_text(s.net_tx_bytes);
  std::printf("%-20s %7.1f%%  %-23s %7s  %5llu  %s\n", name.c_str(), cpu, memory.c_str(), mem_pct,
              static_cast<unsigned long long>(s.pids), net.c_str());
}

int run() {
  const Flags& f = flags();
  std::vector<std::optional<SandboxStats>> first(f.sandboxes.size());
  int rc = 0;
  for (std::size_t i = 0; i < f.sandboxes.size(); ++i) {
    auto s = sandbox_stats(f.sandboxes[i]);
    if (s) {
      first[i] = *s;
    } else {
      rc = fail(s.error());
    }
  }
  bool any = false;
  for (const auto& s : first) any = any || s.has_value();
  if (!any) return rc;  // nothing to show: only the errors
  std::this_thread::sleep_for(kSampleGap);
  nlohmann::json out = nlohmann::json::array();
  if (!f.json) std::printf("%-20s %8s  %-23s %7s  %5s  %s\n", "SANDBOX", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                           "PIDS", "NET RX / TX");
  for (std::size_t i = 0; i < f.sandboxes.size(); ++i) {
    if (!first[i]) continue;
    auto s = sandbox_stats(f.sandboxes[i]);
    if (!s) {
      rc = fail(s.error());
      continue;
    }
    double cpu = cpu_percent(*first[i], *s);
    if (f.json) {
      out.push_back(to_json(f.sandboxes[i], *s, cpu));
    } else {
      print_row(f.sandboxes[i], *s, cpu);
    }
  }
  if (f.json) std::printf("%s\n", dump_lossy(out, 2).c_str());
  return rc;
}

}  // namespace

std::string size_text(std::uint64_t bytes) {
  static const char* const units[] = {"B", "kiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f%s", v, units[u]);
  }
  return buf;
}

double cpu_percent(const SandboxStats& before, const SandboxStats& after) {
  if (after.sampled_ns <= before.sampled_ns || after.cpu_ns < before.cpu_ns) return 0;
  return 100.0 * static_cast<double>(after.cpu_ns - before.cpu_ns) /
         static_cast<double>(after.sampled_ns - before.sampled_ns);
}

void register_stats_command(CLI::App& app) {
  Flags& f = flags();
  f.stats = app.add_subcommand("stats", "Show what running sandboxes use: CPU, memory, tasks, network");
  f.stats->add_option("sandbox", f.sandboxes, "Sandbox ids or names")->required();
  f.stats->add_flag("--json", f.json, "Print a JSON array: every counter, and CPU % over one second");
}

int run_stats_command() {
  if (!flags().stats || !*flags().stats) return -1;
  return run();
}

}  // namespace moat::cli
