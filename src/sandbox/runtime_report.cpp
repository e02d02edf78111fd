// moat::check_runtime (include/moat/runtime.h): what `moat doctor` shows.
#include <sys/stat.h>
#include <unistd.h>

#include "jail/cgroup.h"
#include "jail/syscall_filter.h"
#include "moat/runtime.h"
#include "store/moat_home.h"
#include "vm/accel.h"
#include "vm/runtime_files.h"

namespace moat {
namespace {

std::string size_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_size / 1024) + " KiB";
}

RuntimeCheck check(const char* what, const Result<std::string>& found, bool required = true) {
  RuntimeCheck c;
  c.what = what;
  c.required = required;
  c.ok = found.ok();
  c.value = found ? *found : found.error().message;
  return c;
}

// Whether the shim can give QEMU a control group (jail/cgroup.h): tried
// for real with a group made and removed at once. Not required: without one
// sandboxes run, unbounded by the host, and the shim's log says so.
RuntimeCheck check_cgroup() {
  RuntimeCheck c{"cgroup", false, /*required=*/false, "", ""};
  auto probe = jail::Cgroup::create("moat-doctor-" + std::to_string(::getpid()), {});
  if (!probe) {
    c.value = "QEMU's memory, tasks and CPU are not limited: " + probe.error().message;
    return c;
  }
  c.ok = true;
  std::string parents;
  for (const auto& path : probe->paths()) {
    parents += (parents.empty() ? "" : ", ") + path.substr(0, path.rfind('/'));
  }
  c.value = "each QEMU's memory, tasks and CPU are limited, in a group under " + parents;
  c.detail = jail::describe(probe->version());
  return c;
}

}  // namespace

bool RuntimeReport::ready() const {
  for (const auto& c : checks)
    if (c.required && !c.ok) return false;
  return accel_ok;
}

// The shim's and the volume servers' own confinement (shim/syscall_lists.h,
// shim/volume_server_process.h).
static RuntimeCheck check_filters() {
  RuntimeCheck c{"filters", true, false, "", ""};
  if (!jail::syscall_filters_enforce()) {
    c.value = "sanitizer build: the shim's and volume servers' seccomp filters let every call through";
    return c;
  }
  c.value = ::geteuid() == 0
                ? "the shim and each volume server run under seccomp allow-lists; volume servers apart, in "
                  "namespaces and a root holding only their volume"
                : "the shim and each volume server run under seccomp allow-lists; volume servers apart, in your "
                  "namespaces (their own need root)";
  return c;
}

RuntimeReport check_runtime() {
  RuntimeReport r;
  auto qemu = vm::find_qemu();
  r.checks.push_back(check("qemu", qemu));
  if (qemu) r.checks.back().detail = vm::qemu_version(*qemu);
  for (auto [what, found] : {std::pair{"kernel", vm::find_kernel()}, std::pair{"initramfs", vm::find_initramfs()}}) {
    r.checks.push_back(check(what, found));
    if (found) r.checks.back().detail = size_of(*found);
  }
  // QEMU's confinement (docs/security.md): its filter needs a QEMU built
  // with seccomp; the capabilities are dropped by the shim in any case.
  RuntimeCheck jail{"jail", false, true, "", ""};
  if (qemu) {
    std::string refusal = vm::qemu_sandbox_refusal(*qemu);
    jail.ok = refusal.empty();
    // Only root can give QEMU a user, namespaces and a root of its own
    // (shim/qemu_jail.h); the rest holds for everyone.
    std::string where = ::geteuid() == 0 ? "as a user of its own, in namespaces and a root holding only its files"
                                         : "as you, in your namespaces (a user and root of its own need root)";
    jail.value = jail.ok ? "QEMU runs " + where + ", with no capability, under its own seccomp filter (-sandbox)"
                         : "this QEMU cannot filter its system calls (-sandbox): " + refusal;
  } else {
    jail.value = "no QEMU to check";
  }
  r.checks.push_back(jail);
  r.checks.push_back(check_filters());
  r.checks.push_back(check_cgroup());
  r.checks.push_back(check("shim", vm::find_shim()));
  r.checks.push_back(check("default rootfs", vm::find_default_rootfs(), /*required=*/false));
  r.checks.push_back(check("state dir", store::moat_home()));

  auto probe = vm::probe_kvm();
  r.kvm = {probe.device_exists, probe.device_openable, probe.api_version,
           probe.module_intel,  probe.module_amd,      probe.module_pvm};
  auto accel = vm::choose_accel(Accel::kAuto, probe);
  r.accel_ok = accel.ok();
  if (accel) {
    r.accel = vm::accel_name(accel->accel);
    r.accel_reason = accel->reason;
  } else {
    r.accel_reason = accel.error().message;
  }
  return r;
}

Result<std::string> home_directory() { return store::moat_home(); }

}  // namespace moat
