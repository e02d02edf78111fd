// `moat snapshot create SANDBOX NAME [--label K=V] [--freeze-timeout S]`,
// `snapshot ls [-q] [--format json]`, `snapshot inspect NAME...`,
// `snapshot rm NAME...`, and `moat fork SANDBOX [-n N] [--name-prefix P]
// [--no-start]`: disk snapshots and forks (docs/snapshots.md).
//
// Wiring (main.cpp), around CLI11's parse, as for the other command groups:
//
//   moat::cli::register_snapshot_commands(app);                          // before app.parse()
//   if (int rc = moat::cli::run_snapshot_command(); rc >= 0) return rc;  // after
#pragma once

#include <CLI/CLI.hpp>

namespace moat::cli {

void register_snapshot_commands(CLI::App& app);
int run_snapshot_command();

}  // namespace moat::cli
