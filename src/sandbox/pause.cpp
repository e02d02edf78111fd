// `moat pause` / `moat resume`: a running sandbox's vCPUs stopped and run
// again by its shim through QEMU's monitor, or its whole VM saved to disk
// and restored by a new shim (include/moat/sandboxes.h).
#include <unistd.h>

#include <cerrno>

#include "moat/sandbox.h"
#include "moat/sandboxes.h"
#include "sandbox/lifecycle.h"
#include "sandbox/sandbox_impl.h"
#include "sandbox/shim_request.h"
#include "shim_contract/sandbox_layout.h"


namespace moat {
namespace sandbox {
namespace {

// The shim saves the VM, answers, and ends by itself; the record is settled
// once it has gone (stopped, its state saved: note_paused says `saved`).
Status pause_to_disk(Manager& m, Locked& locked) {
  SandboxRecord& r = locked.record;
  std::string dir = m.dir_of(r.info.id);
  proto::Json p = {{"to_disk", true}};
  MOAT_TRY(ask_shim(r.info.name, dir, proto::make_message(proto::kControlStream, proto::msg::kPause, p),
                    "the pause to disk"));
  MOAT_TRY(stop_shim(r, dir, 0));
  MOAT_TRY(reconcile(m, std::move(r), true));
  return ok_status();
}

Status set_paused(Manager& m, const std::string& id_or_name, bool pause, bool to_disk) {
  // Under the operation lock: a stop or remove does not overlap it.
  MOAT_ASSIGN_OR_RETURN(auto locked, lock_sandbox(m, id_or_name));
  SandboxRecord& r = locked.record;
  bool running = r.state != kStateCreating && r.info.state == SandboxState::kRunning;
  // A sandbox paused to disk is not running: its resume is a start, which
  // restores the saved state.
  if (!pause && !running && r.state != kStateCreating && shim::has_saved_vm(m.dir_of(r.info.id)))
    return start_locked(m, locked, id_or_name, /*ephemeral=*/false);
  if (!running) return make_error("sandbox " + r.info.name + " is not running", ENOTCONN);
  if (pause && to_disk) return pause_to_disk(m, locked);
  return ask_shim(r.info.name, m.dir_of(r.info.id),
                  proto::make_message(proto::kControlStream, pause ? proto::msg::kPause : proto::msg::kResume),
                  pause ? "the pause" : "the resume");
}

}  // namespace
}  // namespace sandbox

Status pause_sandbox(const std::string& id_or_name, const PauseOptions& options) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  return sandbox::set_paused(m, id_or_name, true, options.to_disk);
}

Status resume_sandbox(const std::string& id_or_name) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  return sandbox::set_paused(m, id_or_name, false, false);
}

Status Sandbox::pause(const PauseOptions& options) {
  std::lock_guard<std::mutex> lock(impl_->manager_mu);
  return sandbox::set_paused(*impl_->manager, impl_->id, true, options.to_disk);
}

// A handle's connection was to the shim a pause to disk ended: after the
// restore it connects to the new one.
Status Sandbox::resume() {
  std::lock_guard<std::mutex> lock(impl_->manager_mu);
  bool restores = shim::has_saved_vm(impl_->dir);
  MOAT_TRY(sandbox::set_paused(*impl_->manager, impl_->id, false, false));
  if (!restores) return ok_status();
  auto conn = sandbox::AgentConnection::connect(shim::control_socket_path(impl_->dir));
  if (!conn) return conn.error().wrap("the restored sandbox is not reachable");
  impl_->conn = std::move(*conn);
  return ok_status();
}

}  // namespace moat
