// The sandbox commands of the CLI: run, create, start, stop, restart, rm,
// ls, inspect, logs, exec. Wiring (main.cpp), around CLI11's parse:
//
//   auto after = moat::cli::split_command(argc, argv);  // the words after `--`
//   moat::cli::register_sandbox_commands(app);          // before app.parse()
//   ...
//   if (int rc = moat::cli::run_sandbox_command(after); rc >= 0) return rc;
//
// `run`, `create` and `exec` read their positional words Docker's way: the
// first is the image (or sandbox), the rest the command, and options end at
// the first positional word. A command with options of its own can also
// follow `--`, which CLI11 never sees.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace moat::cli {

// For run/create/exec: removes the first `--` and everything after it from
// argv (adjusting argc) and returns those words.
std::vector<std::string> split_command(int& argc, char** argv);

void register_sandbox_commands(CLI::App& app);
int run_sandbox_command(const std::vector<std::string>& after_dashes);

}  // namespace moat::cli
