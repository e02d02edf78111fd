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
  std::string format = "table";
  bool no_stream = false;
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

std::string used_of(std::uint64_t used, std::uint64_t total) {
  return size_text(used) + " / " + (total ? size_text(total) : "-");
}

void print_header() {
  std::printf("%-20s %8s  %-23s %7s  %-21s %-19s %9s  %5s  %5s  %s\n", "SANDBOX", "CPU %", "MEM USAGE / LIMIT",
              "MEM %", "GUEST MEM USED / TOTAL", "DISK USED / SIZE", "HOST RSS", "PIDS", "EXECS", "NET RX / TX");
}

void print_row(const std::string& name, const SandboxStats& s, double cpu) {
  char mem_pct[16] = "-";
  if (s.memory_limit_bytes != 0)
    std::snprintf(mem_pct, sizeof mem_pct, "%.1f%%",
                  100.0 * static_cast<double>(s.memory_bytes) / static_cast<double>(s.memory_limit_bytes));
  std::string guest = s.guest_memory_total_bytes ? used_of(s.guest_memory_used_bytes, s.guest_memory_total_bytes)
                                                 : std::string("-");
  std::string net = size_text(s.net_rx_bytes) + " / " + size_text(s.net_tx_bytes);
  std::printf("%-20s %7.1f%%  %-23s %7s  %-21s %-19s %9s  %5llu  %5llu  %s\n", name.c_str(), cpu,
              used_of(s.memory_bytes, s.memory_limit_bytes).c_str(), mem_pct, guest.c_str(),
              used_of(s.disk_bytes, s.disk_size_bytes).c_str(), size_text(s.host_rss_bytes).c_str(),
              static_cast<unsigned long long>(s.pids), static_cast<unsigned long long>(s.execs), net.c_str());
}

// One sample of each sandbox still shown; a sandbox that fails (it stopped,
// or never ran) is reported once and left out from then on.
struct Watched {
  std::string name;
  std::optional<SandboxStats> last;
  bool failed = false;
};

void sample_all(std::vector<Watched>& all, int& rc) {
  for (auto& w : all) {
    if (w.failed) continue;
    auto s = sandbox_stats(w.name);
    if (!s) {
      rc = fail(s.error());
      w.failed = true;
      continue;
    }
    w.last = *s;
  }
}

// Prints the rows of a second sample against the first; false when no
// sandbox is left to show.
bool show(std::vector<Watched>& all, const std::vector<std::optional<SandboxStats>>& before, bool json, int& rc) {
  sample_all(all, rc);
  nlohmann::json out = nlohmann::json::array();
  bool any = false;
  for (std::size_t i = 0; i < all.size(); ++i) any = any || (!all[i].failed && before[i]);
  if (!any) return false;
  if (!json) print_header();
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (all[i].failed || !before[i]) continue;
    double cpu = cpu_percent(*before[i], *all[i].last);
    if (json) {
      out.push_back(to_json(all[i].name, *all[i].last, cpu));
    } else {
      print_row(all[i].name, *all[i].last, cpu);
    }
  }
  // Streamed JSON is one array per line, so a reader can take each sample as it comes.
  if (json) std::printf("%s\n", flags().no_stream ? dump_lossy(out, 2).c_str() : dump_lossy(out, -1).c_str());
  std::fflush(stdout);
  return true;
}

int run() {
  const Flags& f = flags();
  bool json = f.json || f.format == "json";
  if (f.format != "json" && f.format != "table")
    return fail(Error{EINVAL, "--format " + f.format + ": expected table or json"});
  std::vector<Watched> all;
  for (const auto& name : f.sandboxes) all.push_back(Watched{name, std::nullopt, false});
  int rc = 0;
  sample_all(all, rc);
  // A terminal gets one screen, redrawn; a pipe gets each sample after the last.
  bool redraw = !f.no_stream && !json && ::isatty(STDOUT_FILENO);
  while (true) {
    std::vector<std::optional<SandboxStats>> before;
    for (const auto& w : all) before.push_back(w.failed ? std::nullopt : w.last);
    bool any = false;
    for (const auto& b : before) any = any || b.has_value();
    if (!any) return rc;  // nothing (left) to show: only the errors
    std::this_thread::sleep_for(kSampleGap);
    if (redraw) std::printf("\033[H\033[J");
    if (!show(all, before, json, rc) || f.no_stream) return rc;
  }
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
  f.stats = app.add_subcommand(
      "stats", "Show what running sandboxes use, every second until they stop: CPU, memory, disk, tasks, network");
  f.stats->add_option("sandbox", f.sandboxes, "Sandbox ids or names")->required();
  f.stats->add_option("--format", f.format, "table or json (a JSON array per sample: every counter, and CPU %)");
  f.stats->add_flag("--json", f.json, "The same as --format json");
  f.stats->add_flag("--no-stream", f.no_stream, "Show one sample (CPU % over one second) and exit");
}

int run_stats_command() {
  if (!flags().stats || !*flags().stats) return -1;
  return run();
}

}  // namespace moat::cli
