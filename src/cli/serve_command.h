// `moat serve`: moat's API over HTTP and WebSocket (docs/server.md).
//
//   moat::cli::register_serve_command(app);                          // before app.parse()
//   if (int rc = moat::cli::run_serve_command(); rc >= 0) return rc; // after
#pragma once

#include <CLI/CLI.hpp>

namespace moat::cli {

void register_serve_command(CLI::App& app);
// -1 when the command line did not select `serve`, else the exit code.
int run_serve_command();

}  // namespace moat::cli
