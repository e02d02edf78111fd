// Runs a helper program (mkfs.ext4 and the like) to completion, capturing
// its combined output for error messages. No shell is involved.
#pragma once

#include <string>
#include <vector>

#include "util/result.h"

namespace moat {

struct CommandResult {
  int exit_code = -1;  // 128+N when killed by signal N
  std::string output;  // stdout and stderr, truncated to a bounded size
};

Result<CommandResult> run_command(const std::vector<std::string>& argv);

// Runs and turns a non-zero exit into an Error carrying the output's tail.
Status run_checked(const std::vector<std::string>& argv);

}  // namespace moat
