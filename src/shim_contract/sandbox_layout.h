// The one place a sandbox directory's layout is spelled out
// ($MOAT_HOME/sandboxes/<id>/): the library writes some of these files, the
// shim others, and both read them. docs/sandboxes.md describes each file.
#pragma once

#include <string>

namespace moat::shim {

// What the shim boots (ShimConfig as JSON), written by the library.
std::string config_path(const std::string& dir);
// The writable upper disk of an overlay root.
std::string upper_disk_path(const std::string& dir);
// flock held by create/start/stop/rm: one operation at a time.
std::string op_lock_path(const std::string& dir);
// flock held by the shim for its whole life: whoever can take it knows no
// shim runs the sandbox (immune to pid reuse).
std::string shim_lock_path(const std::string& dir);
// The shim's pid, written just after it takes shim_lock.
std::string shim_pid_path(const std::string& dir);
// Clients connect here while the sandbox runs.
std::string control_socket_path(const std::string& dir);
// The empty directory the jail's tmpfs root is mounted on, inside QEMU's
// own mount namespace (shim/qemu_jail.h); nothing appears in it outside.
std::string qemu_root_path(const std::string& dir);
// The same for each volume server's root (shim/volume_server_process.h).
std::string volume_root_path(const std::string& dir);
// Present while the running sandbox's vCPUs are paused (written and removed
// by the shim).
std::string paused_marker_path(const std::string& dir);
// A sandbox paused to disk: QEMU's migration stream of the VM (written by
// the shim as memory.state.tmp and renamed when complete; a later shim
// restores from it and removes it once the guest runs again).
std::string memory_state_path(const std::string& dir);
// With memory.state, the guest's RAM apart (sparse, the RAM's size), which
// memory.state then leaves out: the sandbox's own, saved by pause
// --to-disk, read back into its memory by the restore...
std::string memory_ram_path(const std::string& dir);
// ... or in a sandbox made from a memory snapshot or a warm fork, until its
// first start, a hard link of the saved RAM that start maps private.
std::string shared_ram_path(const std::string& dir);
// Whether the sandbox's next start restores a saved VM (memory.state is
// there) instead of booting.
bool has_saved_vm(const std::string& dir);
// How the last run ended (ShimExit as JSON).
std::string last_exit_path(const std::string& dir);
// QEMU's command line, one word a line, for people debugging a boot.
std::string qemu_cmdline_path(const std::string& dir);
// Logs a guest can fill, capped and rotated once (capped_log.h).
std::string console_log_path(const std::string& dir);
std::string qemu_log_path(const std::string& dir);
// The sandbox's secrets with their values (secrets_file.h), mode 0600.
std::string secrets_path(const std::string& dir);
std::string shim_log_path(const std::string& dir);
// One line per exec: start (argv) and end (exit code or signal).
std::string exec_log_path(const std::string& dir);

}  // namespace moat::shim
