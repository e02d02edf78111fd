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

// The most seconds --timeout takes (the agent's limit: a year).
inline constexpr double kMaxCommandTimeoutS = 365.0 * 86400;

// A duration flag given in seconds (to the millisecond). CLI11 reads "nan",
// "inf", "-1" and "1e300" as doubles; none is a usable duration, so anything
// outside [min_s, max_s] is an error naming the flag and the range.
Result<Duration> seconds_flag(const std::string& flag, double seconds, double min_s, double max_s);

// Validates flags and builds the exec options (an error names the flag).
Result<ExecOptions> exec_options_from(const ExecFlags& f);

// Runs the command and returns the code for the CLI to exit with.
int run_in_sandbox(Sandbox& sandbox, const ExecFlags& flags);

void print_error(const std::string& message);
// Prints the error and returns kExitMoatError (125): a command that failed
// in moat, not in the sandbox.
int fail(const Error& e);

}  // namespace moat::cli
