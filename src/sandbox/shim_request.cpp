#include "sandbox/shim_request.h"

#include <cerrno>

#include "proto/file_ops.h"
#include "sandbox/agent_connection.h"
#include "shim_contract/sandbox_layout.h"

namespace moat::sandbox {
namespace {

// The shim has this long to do what it was asked and answer.
constexpr int kReplyTimeoutMs = 30000;

// The errno an `error` reply names; a shim too old to know the request
// answers `unknown_type`, which means the same as ENOSYS.
int reply_errno(const std::string& code) {
  if (code == "unknown_type") return ENOSYS;
  int e = proto::errno_from_name(code);
  return e ? e : EIO;
}

}  // namespace

Status ask_shim(const std::string& name, const std::string& dir, const proto::Message& request,
                const std::string& what) {
  auto conn = AgentConnection::connect(shim::control_socket_path(dir));
  if (!conn) return conn.error().wrap("sandbox " + name + " is not reachable");
  return ask_shim_on(*conn, name, request, what);
}

Status ask_shim_on(AgentConnection& conn, const std::string& name, const proto::Message& request,
                   const std::string& what) {
  MOAT_TRY(conn.send(request));
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto reply, conn.receive(kReplyTimeoutMs));
    if (!reply) return make_error("sandbox " + name + " did not answer " + what + " in time", ETIMEDOUT);
    if (reply->stream != proto::kControlStream) continue;
    if (reply->type == proto::msg::kOk) return ok_status();
    if (reply->type == proto::msg::kError) {
      auto e = proto::parse_error(reply->payload);
      return make_error("sandbox " + name + ": " + e.message, reply_errno(e.code));
    }
  }
}

}  // namespace moat::sandbox
