// `moat volume create [--label K=V] [NAME]`, `ls [-q] [--format json]`,
// `inspect NAME...`, `rm [-f] NAME...`: named volumes (see docs/volumes.md).
//
// Wiring (main.cpp), around CLI11's parse:
//
//   moat::cli::register_volume_commands(app);                          // before app.parse()
//   if (int rc = moat::cli::run_volume_command(); rc >= 0) return rc;  // after
//
// run_volume_command returns -1 when the command line did not select
// `volume`, and the exit code otherwise.
#pragma once

#include <CLI/CLI.hpp>

namespace moat::cli {

void register_volume_commands(CLI::App& app);
int run_volume_command();

}  // namespace moat::cli
