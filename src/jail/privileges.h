// Dropping the privileges a process moat leaves running beside a guest
// could use, and could regain across exec (docs/security.md, "QEMU").
//
// Under TCG the whole guest runs inside QEMU's process: a QEMU bug the guest
// reaches is code running on the host with QEMU's privileges. QEMU needs no
// capability for anything it does for moat (its disks, sockets and
// /dev/kvm are its owner's to open), so it gets none: no_new_privs, an
// empty bounding set, securebits that stop uid 0 from regaining
// capabilities at exec, and empty capability sets.
#pragma once

namespace moat::jail {

// For the child between fork and exec: only raw system calls, no
// allocation (async-signal-safe). Returns 0, or the errno of a step that
// must not fail (no_new_privs, clearing the capability sets). The steps
// that need CAP_SETPCAP (the bounding set, the securebits) are skipped when
// the process does not have it: it then holds no capability to lose.
int drop_privileges_before_exec();

// For the shim, first thing: it will hold secrets' values and the guest's
// memory is shared with it. No core dumps (RLIMIT_CORE 0, inherited by
// QEMU, whose dump would be the guest's RAM), not dumpable (other processes
// of the same user cannot ptrace it or read its memory), and no privilege
// gained by what it execs (no_new_privs). Returns 0 or the errno of the
// step that failed.
int seal_process();

}  // namespace moat::jail
