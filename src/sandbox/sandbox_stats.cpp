// `moat stats`: what a running sandbox uses now, asked of its shim
// (include/moat/stats.h), on a connection of its own.
#include <time.h>

#include <cerrno>

#include "moat/sandbox.h"
#include "moat/stats.h"
#include "sandbox/agent_connection.h"
#include "sandbox/sandbox_impl.h"
#include "shim_contract/sandbox_layout.h"
#include "shim_contract/stats_json.h"

namespace moat {
namespace sandbox {
namespace {

// A shim answers at once: it reads a few counters.
constexpr int kReplyTimeoutMs = 10000;

std::uint64_t monotonic_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

Result<SandboxStats> ask_shim(Manager& m, const std::string& id_or_name) {
  MOAT_ASSIGN_OR_RETURN(auto r, find_sandbox(m, id_or_name));
  if (r.info.state != SandboxState::kRunning)
    return make_error("sandbox " + r.info.name + " is not running", ESRCH);
  auto conn = AgentConnection::connect(shim::control_socket_path(m.dir_of(r.info.id)));
  if (!conn) return conn.error().wrap("sandbox " + r.info.name + " is not reachable");
  MOAT_TRY(conn->send(proto::make_message(proto::kControlStream, proto::msg::kStats)));
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto reply, conn->receive(kReplyTimeoutMs));
    if (!reply) return make_error("sandbox " + r.info.name + " did not answer for its stats in time", ETIMEDOUT);
    if (reply->stream != proto::kControlStream) continue;
    if (reply->type == proto::msg::kError) {
      auto e = proto::parse_error(reply->payload);
      return make_error("sandbox " + r.info.name + ": " + e.message, e.code == "unknown_type" ? ENOSYS : EIO);
    }
    if (reply->type != proto::msg::kStats) continue;
    MOAT_ASSIGN_OR_RETURN(auto stats, shim::stats_from_json(reply->payload));
    stats.sampled_ns = monotonic_ns();
    return stats;
  }
}

}  // namespace
}  // namespace sandbox

Result<SandboxStats> sandbox_stats(const std::string& id_or_name) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  return sandbox::ask_shim(m, id_or_name);
}

Result<SandboxStats> Sandbox::stats() {
  std::lock_guard<std::mutex> lock(impl_->manager_mu);
  return sandbox::ask_shim(*impl_->manager, impl_->id);
}

}  // namespace moat
