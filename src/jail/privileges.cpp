#include "jail/privileges.h"

#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace moat::jail {
namespace {

// Capability numbers the kernel may know (CAP_LAST_CAP grows over time;
// PR_CAPBSET_DROP says EINVAL past the last one).
constexpr int kMaxCapability = 63;

bool has_setpcap() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  return (data[0].effective & (1u << CAP_SETPCAP)) != 0;
}

}  // namespace

int drop_privileges_before_exec(const Identity* identity) {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (has_setpcap()) {
    for (int cap = 0; cap <= kMaxCapability; ++cap)
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
    // uid 0 would otherwise get every capability back at exec (its files'
    // implied capability sets), bounded only by the set just emptied.
    unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                         SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
    if (::prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) return errno;
  }
  // Raw system calls: glibc's wrappers would stop every thread to change
  // them all, and the child of a fork has only this one.
  if (identity != nullptr) {
    gid_t extra = identity->extra_group;
    bool has_extra = extra != static_cast<gid_t>(-1);
    if (::syscall(SYS_setgroups, has_extra ? 1 : 0, has_extra ? &extra : nullptr) != 0) return errno;
    if (::syscall(SYS_setresgid, identity->gid, identity->gid, identity->gid) != 0) return errno;
    if (::syscall(SYS_setresuid, identity->uid, identity->uid, identity->uid) != 0) return errno;
  }
  // Ambient capabilities survive exec; EINVAL: a kernel without them.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct none[2] = {};
  if (::syscall(SYS_capset, &header, none) != 0) return errno;
  return 0;
}

int keep_only_capabilities(const int* keep, int count) {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  auto kept = [&](int cap) {
    for (int i = 0; i < count; ++i)
      if (keep[i] == cap) return true;
    return false;
  };
  bool setpcap = has_setpcap();
  for (int cap = 0; cap <= kMaxCapability && setpcap; ++cap)
    if (!kept(cap) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct now[2] = {};
  if (::syscall(SYS_capget, &header, now) != 0) return errno;
  __user_cap_data_struct want[2] = {};
  for (int i = 0; i < count; ++i) {
    int cap = keep[i];
    if (cap < 0 || cap > kMaxCapability) continue;
    std::uint32_t bit = 1u << (cap % 32);
    // Only what the process holds can be kept.
    if ((now[cap / 32].permitted & bit) == 0) continue;
    want[cap / 32].permitted |= bit;
    want[cap / 32].effective |= bit;
  }
  if (::syscall(SYS_capset, &header, want) != 0) return errno;
  return 0;
}

int seal_process() {
  rlimit none{0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) != 0) return errno;
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return errno;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  return 0;
}

}  // namespace moat::jail
