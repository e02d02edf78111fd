// The exit codes of the moat CLI itself. `run` and `exec` otherwise exit
// with the command's own code (128+N if a signal killed it).
#pragma once

namespace moat::cli {

// moat's own errors, including a bad command line, as Docker uses it.
inline constexpr int kExitMoatError = 125;
// The command was killed by --timeout (as timeout(1)).
inline constexpr int kExitTimedOut = 124;

}  // namespace moat::cli
