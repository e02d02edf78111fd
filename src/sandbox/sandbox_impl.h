// The state behind a moat::Sandbox handle, shared by the files that
// implement the handle's methods (sandbox.cpp, sandbox_files.cpp, ...).
#pragma once

#include <sys/types.h>

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "moat/sandbox.h"
#include "sandbox/agent_connection.h"
#include "sandbox/lifecycle.h"

namespace moat {

struct Sandbox::Impl {
  std::string id;
  std::string dir;
  std::string accel_reason;
  sandbox::AgentConnection conn;
  // The records, opened once per handle (info and stop use it; a handle's
  // methods may be called from several threads).
  std::mutex manager_mu;
  std::optional<sandbox::Manager> manager;
  // Process defaults of every exec (from the image config): environment
  // (overridden by the exec's own), working directory and user.
  std::vector<std::string> default_env;
  std::string default_workdir;
  std::string default_user;
};

}  // namespace moat
