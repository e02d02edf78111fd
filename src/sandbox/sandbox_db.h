// SandboxDb: the sandbox records in $MOAT_HOME/moat.db.
//
//   sandboxes  id, unique name, state, why it stopped, times, shim pid, and
//              the spec (image, resources, limits, labels, process defaults)
//              as JSON
//   events     what happened to them (moat/events.h): written in the same
//              transaction as the change, the newest kMaxEvents kept
//
// States in the table are those of moat::SandboxState plus "creating" (a
// create in progress, or one that died half-way: the reconciler removes it).
// Names are unique by constraint, so two processes creating the same name
// race safely: one insert fails with EEXIST.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "moat/events.h"
#include "moat/sandboxes.h"
#include "shim_contract/event_table.h"
#include "store/sqlite.h"
#include "util/result.h"
#include "vm/qemu_command.h"

namespace moat::sandbox {

using shim::kMaxEvents;  // shim_contract/event_table.h: the table both write


inline constexpr const char* kStateCreating = "creating";

// How the sandbox's VM is made, fixed by create: the options SandboxInfo
// does not show and the root disks create prepared. The record is the one
// source of a sandbox's settings: every start derives the shim's
// config.json from it (lifecycle.cpp), nothing reads them back from there.
struct VmRecord {
  // False for a record written before these were kept: its config.json,
  // written by create, still holds them (read once by start).
  bool stored = false;
  std::string hostname;
  vm::Accel accel = vm::Accel::kTcg;
  int boot_timeout_ms = 0;
  int stop_timeout_ms = 0;
  std::uint64_t log_max_bytes = 0;
  std::vector<vm::DiskSpec> disks;  // /dev/vda, /dev/vdb, ...
  std::string root_mode;            // overlay | rw | virtiofs
  std::string lower_fs;             // erofs | ext4
};

struct SandboxRecord {
  SandboxInfo info;
  std::string state;  // "creating" or to_string(info.state)
  VmRecord vm;
};

class SandboxDb {
 public:
  static Result<std::unique_ptr<SandboxDb>> open(const std::string& moat_home);

  // Inserts a new record; EEXIST (code) when the name or id is taken.
  Status insert(const SandboxRecord& r);
  Result<std::optional<SandboxRecord>> find(const std::string& id_or_name);
  Result<std::vector<SandboxRecord>> list();

  // Rewrites the spec (image, command, VM, ...) once create has resolved it.
  Status update_spec(const SandboxRecord& r);
  // Sets state, reason and the times/pid that go with it.
  Status mark_created(const std::string& id);
  // Marks every one of `ids` created in one transaction: all or none (fork).
  Status mark_all_created(const std::vector<std::string>& ids);
  Status mark_running(const std::string& id, int shim_pid, std::int64_t started_at);
  Status mark_finished(const std::string& id, SandboxState state, const std::string& reason,
                       std::int64_t finished_at);
  Status remove(const std::string& id);

  // Events with seq > after, oldest first, at most `limit`.
  Result<std::vector<SandboxEvent>> events_after(std::uint64_t after, int limit);

 private:
  explicit SandboxDb(std::unique_ptr<store::SqliteDb> db) : db_(std::move(db)) {}
  struct RowState {
    std::string state;
    int shim_pid = 0;
  };
  Result<RowState> row_state(const std::string& id);
  Status add_event(const std::string& id, SandboxEventKind kind, const std::string& reason);
  Status update_state(const std::string& id, const std::string& state, const std::string& reason, int shim_pid,
                      const char* time_column, std::int64_t time);
  Status set_state(const std::string& id, const std::string& state, const std::string& reason, int shim_pid,
                   const char* time_column, std::int64_t time);
  // set_state's work inside the caller's transaction.
  Status change_state(const std::string& id, const std::string& state, const std::string& reason, int shim_pid,
                      const char* time_column, std::int64_t time);
  std::unique_ptr<store::SqliteDb> db_;
};

Result<SandboxState> parse_state(const std::string& s);
std::int64_t unix_now();
// An idle or lifetime limit in the seconds the record and the shim keep it
// in (create validates: whole seconds, not negative).
std::uint64_t whole_seconds(Duration limit);

}  // namespace moat::sandbox
