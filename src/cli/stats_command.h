// `moat stats [--format table|json] [--no-stream] SANDBOX...`: what running
// sandboxes use (CPU %, memory against its limit, the guest's own memory,
// the writable disk, host RSS, tasks, commands started, the guest's
// network), each second from the last sample a second before
// (include/moat/stats.h); until every sandbox has stopped, or once with
// --no-stream.
//
// Wiring (main.cpp), around CLI11's parse:
//
//   moat::cli::register_stats_command(app);                          // before app.parse()
//   if (int rc = moat::cli::run_stats_command(); rc >= 0) return rc; // after
//
// run_stats_command returns -1 when the command line did not select
// `stats`, and the exit code otherwise.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "moat/stats.h"

namespace moat::cli {

void register_stats_command(CLI::App& app);
int run_stats_command();

// "1.5GiB", "812.0MiB", "12.0kB"-style sizes (binary units) for the table.
std::string size_text(std::uint64_t bytes);
// CPU use between two samples, in percent of one CPU (two busy CPUs: 200).
double cpu_percent(const SandboxStats& before, const SandboxStats& after);

}  // namespace moat::cli
