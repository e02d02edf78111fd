// A sandbox's logs (`moat logs`): what the guest wrote to its console, and
// the history of the commands run in it. Both are kept by the shim, capped
// and rotated once (SandboxOptions::log_max_bytes), and outlive a stop.
//
//   moat::LogCallbacks cb;
//   cb.on_console = [](std::string_view s) { fwrite(s.data(), 1, s.size(), stdout); };
//   moat::read_sandbox_logs("web", cb, /*follow=*/true);
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "moat/result.h"

namespace moat {

// One entry of the command history.
struct ExecEvent {
  std::int64_t time = 0;     // unix seconds
  std::uint32_t stream = 0;  // tells the entries of concurrent commands apart
  // "exec", "exit" or "error"; "network": a connection or name the policy
  // denied (stream 0, the line in `message`); empty: an entry that could
  // not be read.
  std::string event;
  std::vector<std::string> argv;  // exec: the command (bytes as they were)
  bool argv_truncated = false;    // exec: only the start of a long command was kept
  int code = 0;                   // exit
  int signal = 0;                 // exit: the signal that ended it, 0 if it exited
  bool timed_out = false;         // exit
  std::string message;            // error; the stored line for an entry that could not be read
};

struct LogCallbacks {
  std::function<void(std::string_view)> on_console;
  std::function<void(const ExecEvent&)> on_exec_event;
  // Asked between polls while following (every 200 ms): true ends the
  // follow, e.g. because the reader left. Unset: follow to the end.
  std::function<bool()> stop;
};

// Hands the callbacks the console (the older generation first), then the
// command history. With `follow`, then the console's new output as it comes,
// until the sandbox is no longer running or `stop` says so.
Status read_sandbox_logs(const std::string& id_or_name, const LogCallbacks& callbacks, bool follow = false);

}  // namespace moat
