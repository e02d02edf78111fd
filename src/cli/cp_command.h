// `moat cp [-a] HOST SANDBOX:PATH` and `moat cp [-a] SANDBOX:PATH HOST`:
// files and directory trees between the host and a running sandbox, with
// `docker cp` semantics (see docs/files.md).
//
// Wiring (main.cpp), around CLI11's parse:
//
//   moat::cli::register_cp_command(app);                         // before app.parse()
//   if (int rc = moat::cli::run_cp_command(); rc >= 0) return rc; // after
//
// run_cp_command returns -1 when the command line did not select `cp`, and
// the exit code otherwise (0 on success, 1 on failure with the error on stderr).
#pragma once

#include <CLI/CLI.hpp>

namespace moat::cli {

void register_cp_command(CLI::App& app);
int run_cp_command();

}  // namespace moat::cli
