#include "shim_contract/sandbox_layout.h"

#include <unistd.h>

namespace moat::shim {

std::string config_path(const std::string& dir) { return dir + "/config.json"; }
std::string upper_disk_path(const std::string& dir) { return dir + "/upper.ext4"; }
std::string op_lock_path(const std::string& dir) { return dir + "/op.lock"; }
std::string shim_lock_path(const std::string& dir) { return dir + "/shim.lock"; }
std::string shim_pid_path(const std::string& dir) { return dir + "/shim.pid"; }
std::string control_socket_path(const std::string& dir) { return dir + "/control.sock"; }
std::string qemu_root_path(const std::string& dir) { return dir + "/qemu-root"; }
std::string volume_root_path(const std::string& dir) { return dir + "/volume-root"; }
std::string last_exit_path(const std::string& dir) { return dir + "/last_exit.json"; }
std::string qemu_cmdline_path(const std::string& dir) { return dir + "/qemu.cmdline"; }
std::string console_log_path(const std::string& dir) { return dir + "/console.log"; }
std::string qemu_log_path(const std::string& dir) { return dir + "/qemu.log"; }
std::string shim_log_path(const std::string& dir) { return dir + "/shim.log"; }
std::string paused_marker_path(const std::string& dir) { return dir + "/paused"; }
std::string memory_state_path(const std::string& dir) { return dir + "/memory.state"; }
std::string memory_ram_path(const std::string& dir) { return dir + "/memory.ram"; }
std::string shared_ram_path(const std::string& dir) { return dir + "/shared.ram"; }
bool has_saved_vm(const std::string& dir) { return ::access(memory_state_path(dir).c_str(), F_OK) == 0; }
std::string exec_log_path(const std::string& dir) { return dir + "/exec.log"; }
std::string secrets_path(const std::string& dir) { return dir + "/secrets.json"; }

}  // namespace moat::shim
