// Payload schemas of an exec stream: the request that starts a process and
// the status that ends it. Both sides use these, so the schema is in one place.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proto/message.h"

namespace moat::proto {

// Limits on what a client may ask for; the agent rejects anything larger.
inline constexpr std::size_t kMaxArgs = 4096;
inline constexpr std::size_t kMaxArgLength = 128 * 1024;
inline constexpr std::size_t kMaxEnv = 4096;
inline constexpr std::size_t kMaxPathLength = 4096;
inline constexpr std::size_t kMaxUserLength = 256;

// Per-stream flow control: a sender may have at most this many data bytes
// unacknowledged before the receiver grants more with a "window" message.
inline constexpr std::uint64_t kInitialWindow = 256 * 1024;
inline constexpr std::size_t kMaxDataChunk = 64 * 1024;

struct Rlimit {
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};

struct ExecRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "KEY=VALUE"
  std::string cwd;               // empty: "/"
  std::string user;              // empty: root; "uid", "uid:gid" or a name
  bool tty = false;
  std::uint16_t rows = 24;
  std::uint16_t cols = 80;
  bool stdin_open = false;       // false: the process reads /dev/null
  std::uint64_t timeout_ms = 0;  // 0: none
  std::map<std::string, Rlimit> rlimits;  // "nofile", "nproc", "as", ...
  // Capability sets as bit masks (bounding, effective, permitted,
  // inheritable, ambient), when the caller sets them.
  bool has_capabilities = false;
  std::uint64_t cap_bounding = 0, cap_effective = 0, cap_permitted = 0, cap_inheritable = 0, cap_ambient = 0;
  bool no_new_privileges = false;
};

Json to_payload(const ExecRequest& r);
Result<ExecRequest> parse_exec_request(const Json& p);

// Checks, before sending, that a request is one the agent takes: at most
// kMaxArgs arguments and kMaxEnv variables of kMaxArgLength each, and the
// whole request within one frame (kMaxBodySize). A request over a limit
// would otherwise end the connection ("Broken pipe") or be refused by the
// agent without saying which limit. The error names the limit (E2BIG).
Status check_exec_request(const ExecRequest& r);

struct ExitStatus {
  int code = 0;       // exit code when the process exited normally
  int signal = 0;     // terminating signal, 0 if none
  bool timed_out = false;

  // The shell convention: code, or 128 + signal.
  int shell_code() const { return signal ? 128 + signal : code; }
};

Json to_payload(const ExitStatus& s);
Result<ExitStatus> parse_exit_status(const Json& p);

}  // namespace moat::proto
