// Choosing the accelerator: KVM when the host's KVM can run a standard Linux
// guest, TCG otherwise. A PVM-only /dev/kvm (kvm_pvm without kvm_intel or
// kvm_amd) exists but kills a standard guest at its first int3/xrstor, so it
// counts as unusable.
#pragma once

#include <string>
#include <string_view>

#include "moat/sandbox.h"
#include "util/result.h"

namespace moat::vm {

enum class Accel { kKvm, kTcg };

const char* accel_name(Accel a);
// The inverse of accel_name for stored configs: "kvm", else TCG.
Accel accel_from_name(std::string_view name);

// What the host offers, gathered by probe_kvm() and kept as data so the
// decision below can be tested on any machine.
struct KvmProbe {
  bool device_exists = false;
  bool device_openable = false;
  int api_version = -1;        // KVM_GET_API_VERSION, 12 on every sane host
  bool module_intel = false;   // /sys/module/kvm_intel
  bool module_amd = false;     // /sys/module/kvm_amd
  bool module_pvm = false;     // /sys/module/kvm_pvm
  std::string open_error;
};

KvmProbe probe_kvm(const std::string& sys_root = "/sys", const std::string& device = "/dev/kvm");

struct AccelChoice {
  Accel accel = Accel::kTcg;
  std::string reason;
};

// Whether KVM can run our (standard) guest kernel, and why or why not.
bool kvm_usable(const KvmProbe& probe, std::string* why);

// Asking for kvm where it cannot work is an error, not a silent fallback.
Result<AccelChoice> choose_accel(moat::Accel requested, const KvmProbe& probe);

}  // namespace moat::vm
