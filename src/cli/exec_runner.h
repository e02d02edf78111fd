// Runs one command in a sandbox for the CLI: the terminal, stdin, output
// streams and signals wired to moat::Sandbox::exec, and the exit code the CLI
// should return.
#pragma once

#include <string>
#include <vector>

#include "cli/exit_codes.h"
#include "moat/sandbox.h"

namespace moat::cli {

struct ExecFlags {
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
  bool tty = false;
  bool interactive = false;
  double timeout_s = 0;
  std::vector<std::string> ulimits;  // NAME=SOFT[:HARD], as Docker's --ulimit
  std::vector<std::string> command;
};

// Validates flags and builds the exec options (an error names the flag).
Result<ExecOptions> exec_options_from(const ExecFlags& f);

// Runs the command and returns the code for the CLI to exit with.
int run_in_sandbox(Sandbox& sandbox, const ExecFlags& flags);

void print_error(const std::string& message);

}  // namespace moat::cli
