// The sandbox manager's internals (the public side is include/moat/sandboxes.h):
// records and directories, reconciliation with the processes that really
// run, and the start/stop steps moat::Sandbox reuses.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "moat/sandboxes.h"
#include "sandbox/file_lock.h"
#include "sandbox/sandbox_db.h"

namespace moat::sandbox {

struct Manager {
  std::string home;
  std::unique_ptr<SandboxDb> db;

  static Result<Manager> open();
  std::string dir_of(const std::string& id) const;
};

// Removes directories under sandboxes/ that no record names, left by a
// create killed between making the directory and inserting the record
// (older than a few seconds, op.lock free, no shim running there).
Status remove_orphan_dirs(Manager& m);

// The record as it really is: a running sandbox whose shim is gone becomes
// stopped or crashed (or disappears if it was auto-remove), a create that
// died half-way disappears, and a live shim behind a record that says it is
// not running makes it running again. `op_locked`: the caller holds the sandbox's
// operation lock. Empty when the sandbox does not exist (any more).
Result<std::optional<SandboxRecord>> reconcile(Manager& m, SandboxRecord r, bool op_locked);

// A sandbox with its operation lock (op.lock) held, and its record re-read
// and settled under that lock: nothing else starts, stops, removes or
// rewrites it until `lock` is released.
struct Locked {
  FileLock lock;
  SandboxRecord record;
};
Result<Locked> lock_sandbox(Manager& m, const std::string& id_or_name);

// Finds a sandbox by id or name and reconciles it; "no such sandbox" if none.
Result<SandboxRecord> find_sandbox(Manager& m, const std::string& id_or_name);
// Sets r.info.paused from the running shim's marker.
void note_paused(Manager& m, SandboxRecord& r);

// Where a new sandbox's upper disk comes from when it does not start empty:
// a copy (reflink or sparse) of `disk`, a snapshot's or a fork's consistent
// copy, already checked by the caller.
struct UpperSource {
  std::string disk;
  std::uint64_t disk_size_mib = 0;
  std::string image_display;  // the reference the record shows (the options name the image by digest)
  std::string snapshot_id;    // recorded as the sandbox's origin ("" for a fork)
};

// A new sandbox made whole but still recorded `creating`, its operation lock
// held: nothing lists, starts or removes it, and should this process die
// the lock goes with it and the next look at the record removes it all.
// The caller marks it created (fork: all of its children in one transaction).
struct PendingCreate {
  SandboxRecord record;
  FileLock lock;
};
Result<PendingCreate> create_pending(Manager& m, const SandboxOptions& o, std::string* accel_reason,
                                     const UpperSource* upper);

// Removes a sandbox's record, directory and what it holds (volumes' uses,
// the image's pin); the caller holds its operation lock.
Status remove_everything(Manager& m, const SandboxRecord& r);

// Creates the record, directory, disks and patches (state created).
// `accel_reason`, if given, receives why the accelerator was chosen. With
// o.from_snapshot set, the snapshot gives the root (snapshots.cpp).
Result<SandboxInfo> create_record(Manager& m, const SandboxOptions& o, std::string* accel_reason = nullptr,
                                  const UpperSource* upper = nullptr);

// Boots a sandbox. `ephemeral`: the first client to connect owns it, and the
// sandbox stops when that client goes away (moat run, Sandbox::create). One
// paused to disk goes on from its saved state instead.
Status start_record(Manager& m, const std::string& id_or_name, bool ephemeral);
// The same with the sandbox's operation lock already held.
Status start_locked(Manager& m, Locked& locked, const std::string& id_or_name, bool ephemeral);
// Asks a shim to stop (killing the VM after timeout_ms) and waits until it
// has gone, signalling it if it does not go; also waits out a shim that is
// ending by itself (after a pause to disk). With `disk_discarded` (the
// sandbox is being removed) nothing of its disk needs flushing first.
Status stop_shim(const SandboxRecord& r, const std::string& dir, int timeout_ms, bool disk_discarded = false);
// Removes the VM state a pause to disk saved (stop of such a sandbox).
Status discard_saved_state(Manager& m, const SandboxRecord& r);
// Asks a running sandbox's shim to stop (killing the VM after timeout_ms),
// waits for it and records the outcome; a sandbox not running is left alone.
Status stop_record(Manager& m, const std::string& id_or_name, int timeout_ms);
// The rules of labels (of sandboxes and snapshots alike): at most 64, keys
// non-empty and without '=', key and value under 4 KiB, both UTF-8.
Status validate_labels(const std::map<std::string, std::string>& labels);

// A stop timeout as the shim takes it; EINVAL unless 0 to a day.
Result<int> stop_timeout_ms(Duration timeout);

}  // namespace moat::sandbox
