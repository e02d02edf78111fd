// What libmoat tells a shim about the sandbox it runs, as config.json in the
// sandbox directory. Written by the sandbox manager, read by moat-shim.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "moat/network.h"
#include "shim_contract/capped_log.h"
#include "shim_contract/sandbox_layout.h"
#include "util/result.h"
#include "vm/qemu_command.h"

namespace moat::shim {

// A host directory the shim serves to the guest over virtio-fs, as the
// device with this tag (the guest side is a vm.mounts entry with the tag).
struct VolumeShare {
  std::string tag;
  std::string host_path;
  bool read_only = false;  // enforced by the shim's server, whatever the guest mounts
  std::uint64_t size_bytes = 0;  // what the guest may store (fs/volume_quota.h); 0: no limit
};

struct ShimConfig {
  std::string sandbox_id;
  std::string dir;             // the sandbox directory; every file of the shim lives here
  vm::VmSpec vm;               // agent_fd and console_fd are filled in by the shim
  int boot_timeout_ms = 60000; // until the agent says hello
  int stop_timeout_ms = 10000; // graceful shutdown before QEMU is killed
  bool stop_when_owner_leaves = false;  // `run`: the first client owns the sandbox
  bool remove_dir_on_exit = true;
  // Nothing of the VM outlives it (a `run` on a fresh upper): stopping needs
  // no clean power-off, so the VM is simply ended.
  bool discard_on_stop = false;
  // A saved VM state to restore instead of booting (memory_state_path):
  // QEMU starts with the same devices and takes the guest from that file.
  std::string restore_from;
  // With restore_from, the RAM file it goes with (restore_from then holds
  // only the devices' state): the sandbox's own, saved by pause --to-disk
  // (memory_ram_path), read back into its memory; or, restore_ram_shared, a
  // memory snapshot's (shared_ram_path), mapped private, its pages shared
  // with every other sandbox restored from it until written.
  std::string restore_ram;
  bool restore_ram_shared = false;
  // A restore that fails leaves the directory even when remove_dir_on_exit
  // is set: the restore was a warm start's (sandbox/boot_template.h), and
  // the library boots the sandbox afresh from the same directory.
  bool keep_dir_if_restore_fails = false;
  // The guest's RAM is a memfd of the shim's even when remove_dir_on_exit
  // is set (which otherwise keeps QEMU's faster anonymous memory): the
  // library saves this VM, RAM apart, as a warm start's template.
  bool keep_ram_apart = false;
  // Stop after this long without an open stream (exec or file transfer) /
  // this long after boot. 0: no limit.
  std::uint64_t idle_timeout_s = 0;
  std::uint64_t max_duration_s = 0;
  std::vector<VolumeShare> volumes;
  // The cap of each log the guest can fill (console.log, qemu.log, shim.log,
  // exec.log): past it the file becomes <name>.1 and a new one starts
  // (capped_log.h). Between kMinLogBytes and kMaxLogBytes.
  std::uint64_t log_max_bytes = kDefaultLogBytes;
  // What the guest may reach, its names and published ports, from the
  // sandbox's record (network_json.h has the form). libmoat validated it;
  // the shim checks it again before applying it.
  moat::NetworkOptions network;
};

// How the last run of a sandbox's shim ended, as last_exit.json in the
// sandbox directory (written when the directory is kept). `clean` is true
// when the stop was asked for (a client, a signal, a limit, the guest
// powering off), false when QEMU died or the boot failed.
struct ShimExit {
  bool clean = false;
  std::string reason;
};

Status write_shim_exit(const ShimExit& e, const std::string& dir);
Result<ShimExit> read_shim_exit(const std::string& dir);

// The pid in shim.pid (written by the shim just after it takes shim.lock),
// or 0 when the file is missing or holds no plausible pid.
pid_t read_shim_pid(const std::string& dir);

Status write_shim_config(const ShimConfig& cfg, const std::string& path);
Result<ShimConfig> read_shim_config(const std::string& path);

}  // namespace moat::shim
