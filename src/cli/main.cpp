// moat: the command line over libmoat.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/cp_command.h"
#include "cli/doctor.h"
#include "cli/exec_runner.h"
#include "cli/sandbox_commands.h"
#include "cli/serve_command.h"
#include "cli/fs_commands.h"
#include "cli/image_commands.h"
#include "cli/network_commands.h"
#include "cli/stats_command.h"
#include "cli/root_commands.h"
#include "cli/snapshot_commands.h"
#include "cli/volume_commands.h"
#include "moat/version.h"

namespace {

// A bad command line is one of moat's own errors (exit 125, as Docker), told
// in one line in the same form as the others, with where to find help.
int parse_failure(const CLI::App& app, const CLI::ParseError& e) {
  std::string command = "moat";
  const CLI::App* at = &app;
  while (at) {
    auto subs = at->get_subcommands();
    at = subs.empty() ? nullptr : subs.front();
    if (at) command += " " + at->get_name();
  }
  std::string what = e.what();
  // CLI11 reports `moat frobnicate` as a missing subcommand; say what it was.
  auto rest = app.remaining();
  if (app.get_subcommands().empty() && !rest.empty() && !rest[0].empty() && rest[0][0] != '-')
    what = "unknown command \"" + rest[0] + "\"";
  moat::cli::print_error(what + " (see " + command + " --help)");
  return moat::cli::kExitMoatError;
}

}  // namespace

int main(int argc, char** argv) {
  // The words after `--` of run/create/exec are the command, never options.
  std::vector<std::string> after_dashes = moat::cli::split_command(argc, argv);

  CLI::App app{"moat: run untrusted code in microVMs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("moat ") + moat::version());

  moat::cli::register_sandbox_commands(app);
  auto* doctor = app.add_subcommand("doctor", "Show what moat will use and whether sandboxes can start");
  moat::cli::register_image_commands(app);
  moat::cli::register_fs_commands(app);
  moat::cli::register_cp_command(app);
  moat::cli::register_volume_commands(app);
  moat::cli::register_snapshot_commands(app);
  moat::cli::register_root_commands(app);
  moat::cli::register_network_commands(app);
  moat::cli::register_stats_command(app);
  moat::cli::register_serve_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with code 0: CLI11 prints them.
    if (e.get_exit_code() == 0) return app.exit(e);
    return parse_failure(app, e);
  }
  if (int rc = moat::cli::run_sandbox_command(after_dashes); rc >= 0) return rc;
  if (int rc = moat::cli::run_fs_command(); rc >= 0) return rc;  // before image: it claims all of `image`
  if (int rc = moat::cli::run_image_command(); rc >= 0) return rc;
  if (int rc = moat::cli::run_cp_command(); rc >= 0) return rc;
  if (int rc = moat::cli::run_volume_command(); rc >= 0) return rc;
  if (int rc = moat::cli::run_snapshot_command(); rc >= 0) return rc;
  if (int rc = moat::cli::run_root_command(); rc >= 0) return rc;
  if (int rc = moat::cli::run_network_command(); rc >= 0) return rc;
  if (int rc = moat::cli::run_stats_command(); rc >= 0) return rc;
  if (int rc = moat::cli::run_serve_command(); rc >= 0) return rc;
  if (*doctor) return moat::cli::run_doctor();
  return moat::cli::kExitMoatError;
}
