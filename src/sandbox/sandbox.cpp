// moat::Sandbox: the library's entry point (see include/moat/sandbox.h).
#include "moat/sandbox.h"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <regex>

#include "sandbox/agent_connection.h"
#include "sandbox/exec_client.h"
#include "sandbox/root_disks.h"
#include "sandbox/sandbox_impl.h"
#include "sandbox/shim_launcher.h"
#include "shim/shim_config.h"
#include "store/moat_home.h"
#include "util/unique_fd.h"
#include "vm/accel.h"
#include "vm/runtime_files.h"

namespace moat {

namespace {

Status validate(const SandboxOptions& o) {
  if (o.cpus < 1 || o.cpus > 64) return make_error("--cpus must be between 1 and 64");
  if (o.memory_mib < 64 || o.memory_mib > 256 * 1024) return make_error("--memory must be between 64 and 262144 MiB");
  if (o.disk_size_mib < 64 || o.disk_size_mib > (16ull << 20)) return make_error("disk size must be between 64 MiB and 16 TiB");
  if (o.boot_timeout_ms < 1000) return make_error("boot timeout must be at least 1 s");
  return ok_status();
}

pid_t read_pid(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  in >> pid;
  return pid > 1 ? static_cast<pid_t>(pid) : -1;
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  return true;
}

// Waits until the process is gone (it is not our child, so poll a pidfd).
bool wait_gone(pid_t pid, int timeout_ms) {
  if (pid <= 0) return true;
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  int n = ::poll(&p, 1, timeout_ms);
  ::close(fd);
  return n > 0;
}

}  // namespace

Sandbox::Sandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sandbox::Sandbox(Sandbox&&) noexcept = default;
Sandbox& Sandbox::operator=(Sandbox&&) noexcept = default;
Sandbox::~Sandbox() = default;

const std::string& Sandbox::id() const { return impl_->id; }
const std::string& Sandbox::accel_reason() const { return impl_->accel_reason; }

Result<Sandbox> Sandbox::create(const SandboxOptions& o) {
  MOAT_TRY(validate(o));
  MOAT_ASSIGN_OR_RETURN(auto home, store::moat_home());
  MOAT_ASSIGN_OR_RETURN(auto qemu, vm::find_qemu());
  MOAT_ASSIGN_OR_RETURN(auto kernel, vm::find_kernel());
  MOAT_ASSIGN_OR_RETURN(auto initrd, vm::find_initramfs());
  MOAT_ASSIGN_OR_RETURN(auto shim, vm::find_shim());
  MOAT_ASSIGN_OR_RETURN(auto accel, vm::choose_accel(o.accel, vm::probe_kvm()));

  auto impl = std::make_unique<Impl>();
  impl->id = store::random_id(12);
  impl->accel_reason = accel.reason;
  MOAT_TRY(store::make_dirs(store::sandboxes_dir(home), 0700));
  impl->dir = store::sandboxes_dir(home) + "/" + impl->id;
  if (::mkdir(impl->dir.c_str(), 0700) != 0) return errno_error("create " + impl->dir);

  shim::ShimConfig cfg;
  cfg.sandbox_id = impl->id;
  cfg.dir = impl->dir;
  cfg.boot_timeout_ms = o.boot_timeout_ms;
  cfg.stop_when_owner_leaves = o.ephemeral;
  cfg.discard_on_stop = o.ephemeral && !o.writable_root;
  cfg.vm.qemu = qemu;
  cfg.vm.kernel = kernel;
  cfg.vm.initrd = initrd;
  cfg.vm.accel = accel.accel;
  cfg.vm.cpus = o.cpus;
  cfg.vm.memory_mib = o.memory_mib;
  cfg.vm.hostname = o.hostname.empty() ? "moat-" + impl->id : o.hostname;

  auto prepared = [&]() -> Status {
    MOAT_TRY(sandbox::prepare_root_disks(o, impl->dir, store::cache_dir(home), cfg.vm));
    return shim::write_shim_config(cfg, impl->dir + "/config.json");
  }();
  if (!prepared) {
    (void)store::remove_tree(impl->dir);
    return prepared.error();
  }
  auto pid = sandbox::launch_shim(shim, impl->dir, o.boot_timeout_ms + 15000);
  if (!pid) {
    (void)store::remove_tree(impl->dir);  // the shim removes it too; this covers a shim that never ran
    return pid.error().wrap("starting the sandbox");
  }
  impl->shim_pid = *pid;
  auto conn = sandbox::AgentConnection::connect(shim::control_socket_path(impl->dir));
  if (!conn) return conn.error().wrap("connecting to sandbox " + impl->id);
  impl->conn = std::move(*conn);
  return Sandbox(std::move(impl));
}

Result<Sandbox> Sandbox::open(const std::string& id) {
  if (!valid_id(id)) return make_error("invalid sandbox id \"" + id + "\"");
  MOAT_ASSIGN_OR_RETURN(auto home, store::moat_home());
  auto impl = std::make_unique<Impl>();
  impl->id = id;
  impl->dir = store::sandboxes_dir(home) + "/" + id;
  struct stat st {};
  if (::stat(impl->dir.c_str(), &st) != 0) return make_error("no such sandbox: " + id);
  impl->shim_pid = read_pid(impl->dir + "/shim.pid");
  if (impl->shim_pid <= 0 || (::kill(impl->shim_pid, 0) != 0 && errno == ESRCH))
    return make_error("sandbox " + id + " is not running");
  auto conn = sandbox::AgentConnection::connect(shim::control_socket_path(impl->dir));
  if (!conn) return conn.error().wrap("sandbox " + id + " is not reachable");
  impl->conn = std::move(*conn);
  return Sandbox(std::move(impl));
}

Result<ExitStatus> Sandbox::exec(const ExecOptions& options, ExecIo& io) {
  return sandbox::run_exec(impl_->conn, options, io);
}

Status Sandbox::stop(int timeout_ms) {
  proto::Json p = {{"timeout_ms", timeout_ms}};
  auto sent = impl_->conn.send(proto::make_message(proto::kControlStream, proto::msg::kStop, p));
  if (sent) {
    // The shim closes the connection only after everything is removed.
    while (true) {
      auto m = impl_->conn.receive(timeout_ms + 10000);
      if (!m) break;      // closed: the shim is done
      if (!*m) return make_error("sandbox " + impl_->id + " did not stop in time");
    }
  }
  impl_->conn.close();
  if (!wait_gone(impl_->shim_pid, 5000)) return make_error("the shim of sandbox " + impl_->id + " is still running");
  return ok_status();
}

}  // namespace moat
