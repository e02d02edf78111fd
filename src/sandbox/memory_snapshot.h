// Memory snapshots (include/moat/snapshots.h: SnapshotOptions::memory): a
// running sandbox's whole VM saved with its disk, and sandboxes restored
// from it instead of booted.
//
//   $MOAT_HOME/snapshots/<id>/memory.state   QEMU's migration stream (0400)
//   $MOAT_HOME/snapshots/<id>/memory.ram     the guest's RAM, sparse (0444)
//   $MOAT_HOME/snapshots/<id>/vm.json        what a child's VM must match
//
// The shim copies the RAM to memory.ram itself and the stream holds only
// the devices' state; a sandbox that was itself restored from a snapshot's
// RAM file has no RAM of its own to copy, and its stream holds the RAM
// (no memory.ram).
//
// A child gets hard links of memory.state and memory.ram as its own
// (shim_contract's memory_state_path, shared_ram_path): its first start
// restores from them and removes the links, exactly as a resume after a
// pause to disk does, and later starts boot afresh. Its QEMU maps
// memory.ram private, so all children share the snapshot's pages in the
// page cache until they write them ("warm fork"). The links keep the state
// for the child even if the snapshot is removed meanwhile.
#pragma once

#include <string>

#include "moat/snapshots.h"
#include "sandbox/lifecycle.h"
#include "sandbox/snapshot_db.h"

namespace moat::sandbox {

std::string snapshot_memory_path(const std::string& home, const std::string& id);
std::string snapshot_ram_path(const std::string& home, const std::string& id);

// What a memory snapshot's VM was: a restore needs the same RAM, vCPUs,
// accelerator and devices.
struct SnapshotVm {
  int memory_mib = 0;
  int cpus = 0;
  bool network_device = false;
  std::string accel;
};

// Where a running VM is saved: its state (the devices', or everything), its
// RAM file (written only when the shim has the RAM to copy) and a copy of
// its upper disk.
struct SavedVm {
  std::string state;
  std::string ram;
  std::string disk;
};

// Saves `src`'s VM and copies its upper disk while the vCPUs stand still,
// then runs the sandbox on (or leaves it paused, as it was). The sandbox
// must run, without volumes; its operation lock is held. `what` names the
// operation in errors ("memory snapshot", "warm fork").
Status save_running_vm(const Manager& m, const SandboxRecord& src, const SavedVm& to, const std::string& what);

// save_running_vm into the snapshot's directory, and vm.json beside it.
Status save_memory_snapshot(const Manager& m, const SandboxRecord& src, const std::string& home,
                            const SnapshotRecord& s, const std::string& disk);

// Fills info's memory fields from the snapshot's directory.
void note_memory_snapshot(const std::string& home, SnapshotInfo& info);

// For a child of a memory snapshot: its VM settings set to the snapshot's,
// and what cannot match refused (EINVAL, saying why).
Status fit_options_to_memory_snapshot(const std::string& home, const SnapshotRecord& s, SandboxOptions& o);

// Hard links of a saved VM's state and RAM file (if there is one) as the
// new sandbox's memory_state_path and shared_ram_path: its first start
// restores from them.
Status give_saved_vm(const std::string& state, const std::string& ram, const std::string& sandbox_dir);

// Links the snapshot's state into the new sandbox's directory.
Status give_memory_state(const std::string& home, const SnapshotRecord& s, const std::string& sandbox_dir);

}  // namespace moat::sandbox
