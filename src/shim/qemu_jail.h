// QEMU's jail (docs/security.md, "QEMU's process"): what the shim sets up
// before it starts QEMU, and what QEMU's process is left with.
//
// When the shim runs as root, QEMU gets
//   - a uid and gid of its own (jail/uid_lease.h), no supplementary group
//     (but the owner group of /dev/kvm under KVM);
//   - fresh mount, PID, IPC, UTS and network namespaces (jail/namespaces.h);
//   - a read-only root holding only: `usr` (QEMU, its libraries, modules and
//     firmware), the host root's links into it (`bin`, `lib`, `lib64`,
//     `sbin`...), `dev/null`, `dev/urandom` (and `dev/kvm` under KVM),
//     `kernel` and `initrd`; and QEMU's own directory at its own path when
//     QEMU is installed outside /usr. Disks and sockets are descriptors QEMU
//     inherits, so none of them is in the root.
// Not root, or `vm.extra_qemu_args` set (an experimenters' knob whose
// arguments may name host paths): QEMU keeps the invoking user and the shim's namespaces (making
// them would take a user namespace; docs/security.md says what that leaves).
// Either way it holds no capability, cannot gain one, and installs its own
// seccomp filter; and it joins a control group of its own (jail/cgroup.h)
// wherever the shim may make one, with the limits below. Where it may not
// (not root and no delegated group), QEMU runs without and the shim's log
// says so.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "jail/cgroup.h"
#include "jail/privileges.h"
#include "jail/root_tree.h"
#include "jail/uid_lease.h"
#include "shim/qemu_process.h"
#include "util/result.h"
#include "vm/qemu_command.h"

namespace moat::shim {

// What QEMU's group allows beyond the guest's RAM: QEMU's own heap,
// libraries, device buffers and (under TCG) the translated-code cache.
inline constexpr std::uint64_t kQemuMemoryOverheadMib = 256;
// QEMU's threads: one per vCPU, its main loop, RCU, and up to 64 block I/O
// workers per context.
inline constexpr std::uint64_t kQemuPidsMax = 512;

// The group's limits for a VM: RAM + overhead (+ the TCG cache), tasks,
// and the VM's CPUs as a CPU-time quota.
jail::CgroupLimits qemu_cgroup_limits(const vm::VmSpec& spec);

struct QemuJail {
  std::optional<jail::UidLease> lease;  // none: not root, no jail of its own
  jail::Identity identity{};
  jail::PreparedRoot root;
  int namespaces = 0;
  std::optional<jail::Cgroup> cgroup;  // none: see cgroup_missing
  std::string cgroup_missing;          // why there is no group, for the shim's log
  std::string unjailed;                // as root: why QEMU has no user and root of its own, for the log

  // What QemuProcess::start applies; valid while this lives.
  ChildJail child() const;
};

// The absolute path of QEMU's binary, symlinks resolved: `qemu` itself when
// it names a path, else the first executable of that name on $PATH.
Result<std::string> resolve_qemu_binary(const std::string& qemu);

// Builds the jail for a sandbox whose directory is `sandbox_dir`, for the
// QEMU at `qemu_binary` (absolute). Under a jail of its own, spec.kernel,
// spec.initrd, spec.ram_file and spec.ram_open_preload are rewritten to
// their paths inside the jail's root (the RAM file bound read-only), and a
// spec.ram_fd brings a /proc of QEMU's own PID namespace, through which
// QEMU opens it.
Result<QemuJail> prepare_qemu_jail(const std::string& sandbox_dir, const std::string& qemu_binary, vm::VmSpec& spec);

}  // namespace moat::shim
