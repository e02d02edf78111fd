// `moat network update SANDBOX [--net MODE] [--allow RULE]... [--deny RULE]...`:
// replaces a sandbox's network mode (if given) and its whole rule list, in
// the running sandbox first and then in its record (docs/network.md).
//
// Wiring (main.cpp), around CLI11's parse:
//
//   moat::cli::register_network_commands(app);                          // before app.parse()
//   if (int rc = moat::cli::run_network_command(); rc >= 0) return rc;  // after
//
// run_network_command returns -1 when the command line did not select
// `network`, and the exit code otherwise.
#pragma once

#include <CLI/CLI.hpp>

namespace moat::cli {

void register_network_commands(CLI::App& app);
int run_network_command();

}  // namespace moat::cli
