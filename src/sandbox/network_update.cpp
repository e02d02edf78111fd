// `moat network update`: a new mode and rule list for a sandbox, taken by
// its running shim first, then kept in its record (include/moat/sandboxes.h).
#include <cerrno>

#include "moat/sandbox.h"
#include "moat/sandboxes.h"
#include "proto/file_ops.h"
#include "sandbox/agent_connection.h"
#include "sandbox/sandbox_impl.h"
#include "shim_contract/network_json.h"
#include "shim_contract/sandbox_layout.h"

namespace moat {
namespace sandbox {
namespace {

// The shim has this long to apply a policy and answer.
constexpr int kReplyTimeoutMs = 30000;

// The errno an `error` reply names; a shim too old to know the request
// answers `unknown_type`, which means the same as ENOSYS.
int reply_errno(const std::string& code) {
  if (code == "unknown_type") return ENOSYS;
  int e = proto::errno_from_name(code);
  return e ? e : EIO;
}

// Sends the policy on a connection of its own and waits for the shim's
// answer to it (the next `ok` or `error` on the control stream).
Status send_to_shim(const SandboxRecord& r, const std::string& dir, const shim::NetworkPolicy& policy) {
  auto conn = AgentConnection::connect(shim::control_socket_path(dir));
  if (!conn) return conn.error().wrap("sandbox " + r.info.name + " is not reachable");
  MOAT_TRY(conn->send(proto::make_message(proto::kControlStream, proto::msg::kNetworkUpdate,
                                          shim::network_policy_to_json(policy))));
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto reply, conn->receive(kReplyTimeoutMs));
    if (!reply)
      return make_error("sandbox " + r.info.name + " did not answer the network update in time", ETIMEDOUT);
    if (reply->stream != proto::kControlStream) continue;
    if (reply->type == proto::msg::kOk) return ok_status();
    if (reply->type == proto::msg::kError) {
      auto e = proto::parse_error(reply->payload);
      return make_error("sandbox " + r.info.name + ": " + e.message, reply_errno(e.code));
    }
  }
}

Status update_network(Manager& m, const std::string& id_or_name, const NetworkPolicyUpdate& update) {
  MOAT_ASSIGN_OR_RETURN(auto locked, lock_sandbox(m, id_or_name));
  SandboxRecord& r = locked.record;
  if (r.state == kStateCreating) return make_error("sandbox " + id_or_name + " is still being created", EBUSY);
  NetworkOptions network = r.info.network;
  if (update.mode) network.mode = *update.mode;
  network.rules = update.rules;
  MOAT_TRY(validate_network(network));
  if (r.info.state == SandboxState::kRunning)
    MOAT_TRY(send_to_shim(r, m.dir_of(r.info.id), {network.mode, network.rules}));
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
