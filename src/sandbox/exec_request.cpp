#include "sandbox/exec_request.h"

namespace moat {
namespace sandbox {

proto::ExecRequest to_request(const ExecOptions& o) {
  proto::ExecRequest r;
  r.argv = o.argv;
  r.env = o.env;
  r.cwd = o.cwd;
  r.user = o.user;
  r.tty = o.tty;
  r.rows = o.rows;
  r.cols = o.cols;
  r.stdin_open = o.stdin_open;
  // A negative timeout becomes one past the request's bound: rejected.
  r.timeout_ms = static_cast<std::uint64_t>(o.timeout.count());
  for (const auto& [k, v] : o.rlimits) r.rlimits[k] = proto::Rlimit{v.soft, v.hard};
  if (o.capabilities) {
    r.has_capabilities = true;
    r.cap_bounding = o.capabilities->bounding;
    r.cap_effective = o.capabilities->effective;
    r.cap_permitted = o.capabilities->permitted;
    r.cap_inheritable = o.capabilities->inheritable;
    r.cap_ambient = o.capabilities->ambient;
  }
  r.no_new_privileges = o.no_new_privileges;
  return r;
}

}  // namespace sandbox

Status check_exec_options(const ExecOptions& options) { return proto::check_exec_request(sandbox::to_request(options)); }

}  // namespace moat
