// `moat pause` / `moat resume`: a running sandbox's vCPUs stopped and run
// again by its shim through QEMU's monitor (include/moat/sandboxes.h).
#include <cerrno>

#include "moat/sandbox.h"
#include "moat/sandboxes.h"
#include "sandbox/sandbox_impl.h"
#include "sandbox/shim_request.h"

namespace moat {
namespace sandbox {
namespace {

Status set_paused(Manager& m, const std::string& id_or_name, bool pause) {
  // Under the operation lock: a stop or remove does not overlap it.
  MOAT_ASSIGN_OR_RETURN(auto locked, lock_sandbox(m, id_or_name));
  SandboxRecord& r = locked.record;
  if (r.state == kStateCreating || r.info.state != SandboxState::kRunning)
    return make_error("sandbox " + r.info.name + " is not running", ENOTCONN);
  return ask_shim(r.info.name, m.dir_of(r.info.id),
                  proto::make_message(proto::kControlStream, pause ? proto::msg::kPause : proto::msg::kResume),
                  pause ? "the pause" : "the resume");
}

}  // namespace
}  // namespace sandbox

Status pause_sandbox(const std::string& id_or_name) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  return sandbox::set_paused(m, id_or_name, true);
}

Status resume_sandbox(const std::string& id_or_name) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  return sandbox::set_paused(m, id_or_name, false);
}

Status Sandbox::pause() {
  std::lock_guard<std::mutex> lock(impl_->manager_mu);
  return sandbox::set_paused(*impl_->manager, impl_->id, true);
}

Status Sandbox::resume() {
  std::lock_guard<std::mutex> lock(impl_->manager_mu);
  return sandbox::set_paused(*impl_->manager, impl_->id, false);
}

}  // namespace moat
