// What libmoat tells a shim about the sandbox it runs, as config.json in the
// sandbox directory. Written by the sandbox manager, read by moat-shim.
#pragma once

#include <string>

#include "util/result.h"
#include "vm/qemu_command.h"

namespace moat::shim {

struct ShimConfig {
  std::string sandbox_id;
  std::string dir;             // the sandbox directory; every file of the shim lives here
  vm::VmSpec vm;               // agent_fd and console_log are filled in by the shim
  int boot_timeout_ms = 60000; // until the agent says hello
  int stop_timeout_ms = 10000; // graceful shutdown before QEMU is killed
  bool stop_when_owner_leaves = false;  // `run`: the first client owns the sandbox
  bool remove_dir_on_exit = true;
  // Nothing of the VM outlives it (a `run` on a fresh upper): stopping needs
  // no clean power-off, so the VM is simply ended.
  bool discard_on_stop = false;
};

std::string control_socket_path(const std::string& dir);
std::string console_log_path(const std::string& dir);

Status write_shim_config(const ShimConfig& cfg, const std::string& path);
Result<ShimConfig> read_shim_config(const std::string& path);

}  // namespace moat::shim
