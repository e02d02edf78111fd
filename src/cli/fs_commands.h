// `moat image mount IMAGE DIR` and `moat image umount DIR`: an EROFS image
// served through moat's own FUSE server (src/fs/).
//
// Wiring (main.cpp), like image_commands.h and after it:
//
//   moat::cli::register_fs_commands(app);   // after register_image_commands
//   ...
//   if (int rc = moat::cli::run_fs_command(); rc >= 0) return rc;
//
// run_fs_command must run before run_image_command, which claims every
// `image` command line. It returns -1 when neither command was selected.
#pragma once

#include <CLI/CLI.hpp>

namespace moat::cli {

void register_fs_commands(CLI::App& app);
int run_fs_command();

}  // namespace moat::cli
