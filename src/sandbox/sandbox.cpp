// moat::Sandbox: the library's entry point (see include/moat/sandbox.h).
#include "moat/sandbox.h"

#include <cerrno>

#include "moat/sandboxes.h"
#include "sandbox/boot_template.h"
#include "sandbox/exec_handle.h"
#include "sandbox/lifecycle.h"
#include "sandbox/sandbox_impl.h"
#include "shim_contract/shim_config.h"

namespace moat {

namespace {

// A template so it can fill Sandbox::Impl (private) for the members below.
template <class Impl>
Status attach(sandbox::Manager& m, const sandbox::SandboxRecord& r, Impl* impl) {
  impl->id = r.info.id;
  impl->dir = m.dir_of(r.info.id);
  impl->default_env = r.info.env;
  impl->default_workdir = r.info.workdir;
  impl->default_user = r.info.user;
  auto conn = sandbox::AgentConnection::connect(shim::control_socket_path(impl->dir));
  if (!conn) return conn.error().wrap("sandbox " + r.info.name + " is not reachable");
  impl->conn = std::move(*conn);
  return ok_status();
}

}  // namespace

Sandbox::Sandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sandbox::Sandbox(Sandbox&&) noexcept = default;
Sandbox& Sandbox::operator=(Sandbox&&) noexcept = default;
Sandbox::~Sandbox() = default;

const std::string& Sandbox::id() const { return impl_->id; }
const std::string& Sandbox::accel_reason() const { return impl_->accel_reason; }

Result<SandboxInfo> Sandbox::info() {
  std::lock_guard<std::mutex> lock(impl_->manager_mu);
  MOAT_ASSIGN_OR_RETURN(auto r, sandbox::find_sandbox(*impl_->manager, impl_->id));
  return r.info;
}

Result<Sandbox> Sandbox::create(const SandboxOptions& o) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  std::string accel_reason;
  MOAT_ASSIGN_OR_RETURN(auto info, sandbox::create_record(m, o, &accel_reason));
  MOAT_TRY(sandbox::start_record(m, info.id, o.ephemeral));
  MOAT_ASSIGN_OR_RETURN(auto r, sandbox::find_sandbox(m, info.id));
  auto impl = std::make_unique<Impl>();
  impl->accel_reason = accel_reason;
  // The first connection owns an ephemeral sandbox: this one.
  MOAT_TRY(attach(m, r, impl.get()));
  // The first boot of its kind leaves a warm-start template (after the
  // attach, which made this handle the owner).
  sandbox::make_boot_template_if_wanted(m, info.id);
  impl->manager = std::move(m);
  return Sandbox(std::move(impl));
}

Result<Sandbox> Sandbox::open(const std::string& id_or_name) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  MOAT_ASSIGN_OR_RETURN(auto r, sandbox::find_sandbox(m, id_or_name));
  if (r.state == sandbox::kStateCreating) return make_error("sandbox " + id_or_name + " is still being created", EBUSY);
  if (r.info.state != SandboxState::kRunning)
    return make_error("sandbox " + id_or_name + " is not running (" + to_string(r.info.state) +
                          "); start it with `moat start " + id_or_name + "`",
                      ENOTCONN);
  auto impl = std::make_unique<Impl>();
  MOAT_TRY(attach(m, r, impl.get()));
  impl->manager = std::move(m);
  return Sandbox(std::move(impl));
}

namespace {

// The image's process defaults under the exec's own: its environment first,
// so the exec's own entries win; its working directory and user unless set.
template <class Impl>
ExecOptions with_defaults(const Impl& impl, const ExecOptions& options) {
  ExecOptions o = options;
  o.env = impl.default_env;
  o.env.insert(o.env.end(), options.env.begin(), options.env.end());
  if (o.cwd.empty()) o.cwd = impl.default_workdir;
  if (o.user.empty()) o.user = impl.default_user;
  return o;
}

}  // namespace

Result<ExitStatus> Sandbox::exec(const ExecOptions& options, ExecIo& io) {
  return sandbox::run_exec(impl_->conn, with_defaults(*impl_, options), io);
}

Result<Exec> Sandbox::start_exec(const ExecOptions& options, const ExecCallbacks& callbacks) {
  MOAT_TRY(check_exec_options(options));
  auto conn = sandbox::AgentConnection::connect(shim::control_socket_path(impl_->dir));
  if (!conn) {
    // No socket, or no shim behind it: the sandbox stopped (ENOTCONN, so a
    // caller sees "not running" rather than a missing file).
    int code = conn.error().code;
    if (code == ENOENT || code == ECONNREFUSED)
      return make_error("sandbox " + impl_->id + " is not running (" + conn.error().message + ")", ENOTCONN);
    return conn.error().wrap("sandbox " + impl_->id + " is not reachable");
  }
  return sandbox::start_exec(std::move(*conn), with_defaults(*impl_, options), callbacks);
}

Status Sandbox::stop(Duration timeout) {
  MOAT_ASSIGN_OR_RETURN(int timeout_ms, sandbox::stop_timeout_ms(timeout));
  // Asked over this connection first: closing it first would make a shim
  // this handle owns start its own stop, with the sandbox's stop timeout.
  proto::Json p = {{"timeout_ms", timeout_ms}};
  (void)impl_->conn.send(proto::make_message(proto::kControlStream, proto::msg::kStop, p));
  impl_->conn.close();
  // Then the one stop path: it waits for the shim, signals one that does
  // not end, and records the outcome.
  std::lock_guard<std::mutex> lock(impl_->manager_mu);
  auto st = sandbox::stop_record(*impl_->manager, impl_->id, timeout_ms);
  if (!st && st.error().code == ENOENT) return ok_status();  // auto-removed when it ended
  return st;
}

}  // namespace moat
