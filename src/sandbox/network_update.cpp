// `moat network update`: a new mode and rule list for a sandbox, taken by
// its running shim first, then kept in its record (include/moat/sandboxes.h).
#include <cerrno>

#include "moat/sandbox.h"
#include "moat/sandboxes.h"
#include "sandbox/sandbox_impl.h"
#include "sandbox/shim_request.h"
#include "shim_contract/network_json.h"

namespace moat {
namespace sandbox {
namespace {

Status update_network(Manager& m, const std::string& id_or_name, const NetworkPolicyUpdate& update) {
  MOAT_ASSIGN_OR_RETURN(auto locked, lock_sandbox(m, id_or_name));
  SandboxRecord& r = locked.record;
  if (r.state == kStateCreating) return make_error("sandbox " + id_or_name + " is still being created", EBUSY);
  NetworkOptions network = r.info.network;
  if (update.mode) network.mode = *update.mode;
  network.rules = update.rules;
  MOAT_TRY(validate_network(network));
  if (r.info.state == SandboxState::kRunning)
    MOAT_TRY(ask_shim(r.info.name, m.dir_of(r.info.id),
                      proto::make_message(proto::kControlStream, proto::msg::kNetworkUpdate,
                                          shim::network_policy_to_json({network.mode, network.rules})),
                      "the network update"));
  r.info.network = std::move(network);
  return m.db->update_spec(r);
}

}  // namespace
}  // namespace sandbox

Status update_sandbox_network(const std::string& id_or_name, const NetworkPolicyUpdate& update) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  return sandbox::update_network(m, id_or_name, update);
}

Status Sandbox::update_network(const NetworkPolicyUpdate& update) {
  std::lock_guard<std::mutex> lock(impl_->manager_mu);
  return sandbox::update_network(*impl_->manager, impl_->id, update);
}

}  // namespace moat
