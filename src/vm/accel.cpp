#include "vm/accel.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace moat::vm {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

const char* accel_name(Accel a) { return a == Accel::kKvm ? "kvm" : "tcg"; }

Accel accel_from_name(std::string_view name) { return name == "kvm" ? Accel::kKvm : Accel::kTcg; }

KvmProbe probe_kvm(const std::string& sys_root, const std::string& device) {
  KvmProbe p;
  p.device_exists = exists(device);
  p.module_intel = exists(sys_root + "/module/kvm_intel");
  p.module_amd = exists(sys_root + "/module/kvm_amd");
  p.module_pvm = exists(sys_root + "/module/kvm_pvm");
  if (p.device_exists) {
    int fd = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
      p.device_openable = true;
      p.api_version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
      ::close(fd);
    } else {
      p.open_error = std::strerror(errno);
    }
  }
  return p;
}

bool kvm_usable(const KvmProbe& p, std::string* why) {
  auto say = [&](const std::string& s) {
    if (why) *why = s;
  };
  if (!p.device_exists) return say("/dev/kvm does not exist"), false;
  if (!p.device_openable) return say("/dev/kvm cannot be opened: " + p.open_error), false;
  if (p.api_version != 12)
    return say("/dev/kvm reports API version " + std::to_string(p.api_version) + ", not 12"), false;
  if (!p.module_intel && !p.module_amd) {
    if (p.module_pvm)
      return say("/dev/kvm is a PVM hypervisor (kvm_pvm loaded, no kvm_intel/kvm_amd): it runs only "
                 "PVM-built guests, and a standard kernel dies at its first int3/xrstor"),
             false;
    return say("neither kvm_intel nor kvm_amd is loaded"), false;
  }
  say(std::string("/dev/kvm is usable (") + (p.module_intel ? "kvm_intel" : "kvm_amd") + ")");
  return true;
}

Result<AccelChoice> choose_accel(moat::Accel requested, const KvmProbe& probe) {
  std::string why;
  bool kvm = kvm_usable(probe, &why);
  if (requested == moat::Accel::kTcg) return AccelChoice{Accel::kTcg, "tcg requested (--accel tcg)"};
  if (requested == moat::Accel::kKvm) {
    if (!kvm) return make_error("--accel kvm: KVM cannot run the guest here: " + why);
    return AccelChoice{Accel::kKvm, "kvm requested; " + why};
  }
  if (kvm) return AccelChoice{Accel::kKvm, "auto: " + why};
  return AccelChoice{Accel::kTcg, "auto: TCG (software emulation) because " + why};
}

}  // namespace moat::vm

namespace moat {

const char* to_string(Accel accel) {
  switch (accel) {
    case Accel::kAuto: return "auto";
    case Accel::kKvm: return "kvm";
    case Accel::kTcg: return "tcg";
  }
  return "auto";
}

Result<Accel> parse_accel(std::string_view text) {
  for (Accel a : {Accel::kAuto, Accel::kKvm, Accel::kTcg})
    if (text == to_string(a)) return a;
  return make_error("unknown accelerator \"" + std::string(text) + "\" (use auto, kvm or tcg)", EINVAL);
}

}  // namespace moat
