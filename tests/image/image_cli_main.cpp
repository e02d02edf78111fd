// moat-image-cli: `moat image …` on its own, so the registry tests can drive
// the image commands before (or without) the full moat binary. Same code as
// `moat image`: cli/image_commands.cpp.
#include <CLI/CLI.hpp>

#include "cli/image_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"moat image commands"};
  app.require_subcommand(1);
  moat::cli::register_image_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  int rc = moat::cli::run_image_command();
  return rc < 0 ? 2 : rc;
}
