#include "cli/doctor.h"

#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "store/moat_home.h"
#include "vm/accel.h"
#include "vm/runtime_files.h"

namespace moat::cli {
namespace {

bool report(const char* what, const Result<std::string>& r, const std::string& extra = "") {
  if (r) {
    std::printf("%-14s %s%s\n", what, r->c_str(), extra.c_str());
    return true;
  }
  std::printf("%-14s MISSING: %s\n", what, r.error().message.c_str());
  return false;
}

std::string size_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return " (" + std::to_string(st.st_size / 1024) + " KiB)";
}

}  // namespace

int run_doctor() {
  bool ok = true;
  auto qemu = vm::find_qemu();
  ok &= report("qemu", qemu, qemu ? "  [" + vm::qemu_version(*qemu) + "]" : "");
  auto kernel = vm::find_kernel();
  ok &= report("kernel", kernel, kernel ? size_of(*kernel) : "");
  auto initrd = vm::find_initramfs();
  ok &= report("initramfs", initrd, initrd ? size_of(*initrd) : "");
  ok &= report("shim", vm::find_shim());
  report("default rootfs", vm::find_default_rootfs());
  ok &= report("state dir", store::moat_home());

  auto probe = vm::probe_kvm();
  std::printf("%-14s exists=%s openable=%s api=%d kvm_intel=%s kvm_amd=%s kvm_pvm=%s\n", "/dev/kvm",
              probe.device_exists ? "yes" : "no", probe.device_openable ? "yes" : "no", probe.api_version,
              probe.module_intel ? "yes" : "no", probe.module_amd ? "yes" : "no", probe.module_pvm ? "yes" : "no");
  auto accel = vm::choose_accel("auto", probe);
  if (accel) {
    std::printf("%-14s %s: %s\n", "accelerator", vm::accel_name(accel->accel), accel->reason.c_str());
  } else {
    std::printf("%-14s ERROR: %s\n", "accelerator", accel.error().message.c_str());
    ok = false;
  }
  std::printf("%s\n", ok ? "ready: sandboxes can start" : "not ready: fix the MISSING items above");
  return ok ? 0 : 1;
}

}  // namespace moat::cli
