// `moat image pull | ls | inspect | rm | tag | fsck | load | save | prune` and
// `moat registry login | logout`: the image store on the command line.
//
// Wiring (main.cpp), around CLI11's parse:
//
//   moat::cli::register_image_commands(app);        // before app.parse()
//   ...
//   if (int rc = moat::cli::run_image_command(); rc >= 0) return rc;   // after
//
// register_image_commands adds the `image` and `registry` subcommands and keeps the parsed
// flags in this file's own state; run_image_command returns -1 when the
// command line selected neither, and the exit code otherwise (0 on
// success, 1 on failure, with the error on stderr).
#pragma once

#include <CLI/CLI.hpp>

namespace moat::cli {

void register_image_commands(CLI::App& app);
int run_image_command();

}  // namespace moat::cli
