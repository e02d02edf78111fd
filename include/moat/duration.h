// Durations in the public API: one type everywhere, whole milliseconds
// (a C binding passes them as int64 milliseconds).
//
// Two conventions, each used one way:
//   - a limit (an idle or lifetime limit, a command's timeout): zero means
//     no limit;
//   - a wait (Exec::wait, Exec::read): no value waits as long as it takes,
//     zero only looks.
// A negative duration is invalid wherever it is given (EINVAL).
#pragma once

#include <chrono>

namespace moat {

using Duration = std::chrono::milliseconds;

}  // namespace moat
