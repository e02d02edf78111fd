// The exec history of a sandbox (`moat logs`): one JSON line per command
// start and end, written by the shim, read by the CLI. Its text comes from
// clients (argv) and from the guest (error messages), so writing never throws
// and reading accepts any line: bytes are kept in the reversible form of
// proto/text.h, and a damaged line reads as what it can.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/message.h"

namespace moat::proto {

// At most this much of a command line goes into one history line.
inline constexpr std::size_t kMaxLoggedArgvBytes = 64 * 1024;

// The line for an `exec` request payload (its argv, as far as it is valid).
std::string exec_log_start(std::uint64_t time_s, std::uint32_t stream, const Json& exec_payload);

// The line for the end of a stream: an `exit` or an `error` message;
// nullopt for any other message.
std::optional<std::string> exec_log_end(std::uint64_t time_s, std::uint32_t stream, const Message& m);

// A line of the sandbox's network log (a denied connection or name), kept
// in the same history so `moat logs` shows it in order with the commands.
std::string exec_log_network(std::uint64_t time_s, std::string_view message);

struct ExecLogEntry {
  std::int64_t time = 0;
  std::uint32_t stream = 0;
  std::string event;  // "exec", "exit", "error", "network"
  std::vector<std::string> argv;
  bool argv_truncated = false;
  int code = 0;
  int signal = 0;
  bool timed_out = false;
  std::string message;
};

// Reads one history line; nullopt if it is not a JSON object.
std::optional<ExecLogEntry> parse_exec_log_line(std::string_view line);

}  // namespace moat::proto
