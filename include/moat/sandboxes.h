// moat's sandbox manager: sandboxes that outlive the process that made them.
//
//   auto info = moat::create_sandbox({.image = "python:3.12", .name = "py"});
//   moat::start_sandbox("py");
//   auto sb = moat::Sandbox::open("py");       // exec, files (sandbox.h)
//   moat::stop_sandbox("py");                  // disk kept; start again later
//   moat::remove_sandbox("py");
//
// State lives in $MOAT_HOME/moat.db (SQLite, WAL) and sandboxes/<id>/. Every
// call first reconciles the records with reality: a sandbox whose shim or VM
// died is marked crashed and its processes and sockets are gone. Calls from
// several processes at once are safe: each sandbox has a lock, and names are
// unique in the database.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "moat/result.h"
#include "moat/sandbox.h"

namespace moat {

// created: defined, never started. running: its VM runs commands.
// stopped: powered off on request (or by its idle/max-duration limit).
// crashed: its VM or shim died without being asked to.
enum class SandboxState { kCreated, kRunning, kStopped, kCrashed };
std::string to_string(SandboxState s);

struct SandboxInfo {
  std::string id;
  std::string name;
  std::string image;         // as given ("" for --rootfs-dir/--rootfs-image roots)
  std::string image_digest;  // manifest digest
  SandboxState state = SandboxState::kCreated;
  std::string reason;        // why it stopped or crashed
  std::int64_t created_at = 0;  // unix seconds
  std::int64_t started_at = 0;
  std::int64_t finished_at = 0;
  std::map<std::string, std::string> labels;
  int cpus = 1;
  std::uint32_t cpu_weight = 100;
  std::uint32_t io_weight = 0;  // 0: the kernel's default
  int memory_mib = 0;
  std::uint64_t disk_size_mib = 0;
  Duration idle_timeout{0};  // zero: no limit
  Duration max_duration{0};
  bool auto_remove = false;
  // The command `moat run` executes and the defaults of every exec.
  std::vector<std::string> command;
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
  std::string dir;           // sandboxes/<id>
  int shim_pid = 0;          // while running
  // Host paths of directory volumes are absolute; named volumes by name.
  std::vector<VolumeMount> volumes;
  std::vector<TmpfsMount> tmpfs;
  NetworkOptions network;  // as create set it and `moat network update` changed it
  // The disk snapshot it was made from (its id; moat/snapshots.h), if any.
  std::string snapshot;
  // Running with its vCPUs paused (pause_sandbox).
  bool paused = false;
  // Not running, with its VM's state saved by a pause to disk: start or
  // resume goes on from there; stop discards the state.
  bool saved = false;
};

// Defines a sandbox: resolves (and per the pull policy pulls) the image,
// makes its writable disk and applies the patches. Does not boot it.
Result<SandboxInfo> create_sandbox(const SandboxOptions& options);

// Boots a created or stopped (or crashed) sandbox; returns once it runs
// commands. Starting a running sandbox is an error.
Status start_sandbox(const std::string& id_or_name);

// Powers the guest off (filesystems synced), killing the VM after
// `timeout`. Stopping a sandbox that is not running does nothing.
Status stop_sandbox(const std::string& id_or_name, Duration timeout = std::chrono::seconds(10));

Status restart_sandbox(const std::string& id_or_name, Duration timeout = std::chrono::seconds(10));

// Stops a running sandbox's vCPUs where they are, keeping its memory,
// processes, open files and connections (the host side of them), until
// resume_sandbox runs them again; the guest's wall clock is then set from
// the host's. Returns once QEMU has done it. While paused, requests that
// start something (exec, file operations, snapshots of a running upper) are
// refused with an error saying so, commands already running wait, and
// stop/remove work as usual. Its idle and max-duration limits keep counting.
// Pausing a paused sandbox, or resuming a running one, does nothing; either
// on a sandbox that is not running is ENOTCONN (kNotRunning).
//
// With to_disk, the VM's whole state (memory, devices, vCPUs) is saved in
// the sandbox's directory and its QEMU and shim end, so it holds no memory
// and no process; the sandbox reads as stopped with `saved` set. resume (or
// start) restores it and it goes on from where it was: processes, files in
// memory, the counter of a loop. What does not survive: commands and file
// transfers under way end with an error saying so (their connections go
// with the shim), as do the host sides of the guest's network connections.
// Refused (EOPNOTSUPP) for a sandbox with volumes, whose virtio-fs devices
// QEMU cannot save, and (EINVAL) for one removed when it stops. A restore
// that fails (the sandbox's VM settings changed since, another QEMU) keeps
// the state and says why; stop discards it so that start boots afresh.
// (PauseOptions is in moat/sandbox.h.)
Status pause_sandbox(const std::string& id_or_name, const PauseOptions& options = {});
Status resume_sandbox(const std::string& id_or_name);

// Removes a sandbox and everything it has (disk, logs, sockets, record). A
// running sandbox needs force, which kills it first.
Status remove_sandbox(const std::string& id_or_name, bool force = false);

Result<SandboxInfo> inspect_sandbox(const std::string& id_or_name);

// `moat network update`: replaces the mode (if given) and the whole rule
// list of a sandbox's network options. Checked first (EINVAL with the
// reason). A running sandbox's shim is sent the new policy and must take it
// (its error otherwise, e.g. ENOSYS, and the record is left as it was); then
// the record keeps it, so the next start applies it. For a sandbox that is
// not running only the record changes.
Status update_sandbox_network(const std::string& id_or_name, const NetworkPolicyUpdate& update);

// All sandboxes (oldest first), or those carrying every label in `labels`.
Result<std::vector<SandboxInfo>> list_sandboxes(const std::map<std::string, std::string>& labels = {});

}  // namespace moat
