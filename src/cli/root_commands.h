// `moat diff SANDBOX [--format json]`: what a sandbox changed in its root
// against its image; `moat export SANDBOX [-o FILE]`: its root as a tar
// (docs/snapshots.md, "Diff", "Export"); `moat commit SANDBOX REF [-c INSTR]
// [-e K=V] [-w DIR] [-m MSG]`: its changes as a new image ("Commit").
//
// Wiring (main.cpp), as for the other command groups:
//
//   moat::cli::register_root_commands(app);                          // before app.parse()
//   if (int rc = moat::cli::run_root_command(); rc >= 0) return rc;  // after
#pragma once

#include <CLI/CLI.hpp>

namespace moat::cli {

void register_root_commands(CLI::App& app);
int run_root_command();

}  // namespace moat::cli
