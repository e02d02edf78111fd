#include "cli/doctor.h"

#include <cstdio>
#include <string>

#include "moat/runtime.h"

namespace moat::cli {

int run_doctor() {
  RuntimeReport r = check_runtime();
  for (const auto& c : r.checks) {
    if (!c.ok) {
      std::printf("%-14s MISSING: %s\n", c.what.c_str(), c.value.c_str());
      continue;
    }
    std::string extra;
    if (c.what == "qemu" && !c.detail.empty()) extra = "  [" + c.detail + "]";
    else if (!c.detail.empty()) extra = " (" + c.detail + ")";
    std::printf("%-14s %s%s\n", c.what.c_str(), c.value.c_str(), extra.c_str());
  }
  const KvmProbe& k = r.kvm;
  std::printf("%-14s exists=%s openable=%s api=%d kvm_intel=%s kvm_amd=%s kvm_pvm=%s\n", "/dev/kvm",
              k.device_exists ? "yes" : "no", k.device_openable ? "yes" : "no", k.api_version,
              k.module_intel ? "yes" : "no", k.module_amd ? "yes" : "no", k.module_pvm ? "yes" : "no");
  if (r.accel_ok)
    std::printf("%-14s %s: %s\n", "accelerator", r.accel.c_str(), r.accel_reason.c_str());
  else
    std::printf("%-14s ERROR: %s\n", "accelerator", r.accel_reason.c_str());
  bool ok = r.ready();
  std::printf("%s\n", ok ? "ready: sandboxes can start" : "not ready: fix the MISSING items above");
  return ok ? 0 : 1;
}

}  // namespace moat::cli
