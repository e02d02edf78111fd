// A seccomp allow-list for a process moat runs beside a guest: the shim,
// which relays the guest's channel and network, and each volume server,
// which parses FUSE requests out of guest memory (docs/security.md).
//
// The filter names what the process may call; anything else is trapped
// before it runs; so is a signal to any process but itself (tgkill of
// another thread group; kill is not on any list). The trap's handler writes one line naming the call to
// the process's stderr (the shim's log) and ends the process with
// kFilterViolationExit: a process whose code asks for a call it never
// makes on its own has been subverted, or has a path the list missed, and
// either way must not go on. Thread creation is allowed, process creation
// is not: clone only with CLONE_THREAD, clone3 answers ENOSYS (its flags
// sit in memory a filter cannot read; glibc then falls back to clone).
//
// The filter is installed on every thread of the process at once (TSYNC)
// and is inherited by every thread made after. It cannot be removed.
//
// Sanitizer builds: their runtime makes calls outside any such list (the
// leak checker ptraces every thread at exit), so there the filter records
// nothing and lets every call through while still being installed
// (Seccomp: 2); the allow-lists are proven by the ordinary build's tests.
#pragma once

#include <string>
#include <vector>

#include "util/result.h"

namespace moat::jail {

// Exit status of a process ended by its filter.
inline constexpr int kFilterViolationExit = 159;

struct SyscallFilter {
  // Names as the kernel's table has them ("openat", "recvmsg"). A name the
  // running architecture lacks (e.g. a legacy call) is skipped.
  std::vector<std::string> allowed;
  // ioctl only with these request numbers (first argument after the fd).
  std::vector<unsigned long> allowed_ioctls;
  // Who the process is, for the trap's line ("moat-shim", "volume /srv/x").
  std::string who;
};

// False in sanitizer builds, where filters let every call through.
bool syscall_filters_enforce();

// Installs `filter` on every thread of the calling process, after setting
// no_new_privs (which the kernel requires of a process without
// CAP_SYS_ADMIN). Also installs the SIGSYS handler that reports a trapped
// call. Errors name the step; the process is unchanged on error except for
// no_new_privs.
Status install_syscall_filter(const SyscallFilter& filter);

}  // namespace moat::jail
