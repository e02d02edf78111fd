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

#include <sys/types.h>

namespace moat::jail {

// Who the process becomes: a uid and gid, and at most one supplementary
// group (e.g. the group that owns /dev/kvm).
struct Identity {
  uid_t uid;
  gid_t gid;
  gid_t extra_group = static_cast<gid_t>(-1);  // -1: none
};

// For the child between fork and exec: only raw system calls, no
// allocation (async-signal-safe). Returns 0, or the errno of a step that
// must not fail (no_new_privs, the change of identity, clearing the
// capability sets). The steps that need CAP_SETPCAP (the bounding set, the
// securebits) are skipped when the process does not have it: it then holds
// no capability to lose. With `identity`, the process also becomes that
// user (which needs CAP_SETUID and CAP_SETGID) before its capabilities go.
int drop_privileges_before_exec(const Identity* identity = nullptr);

// For a process that keeps its uid 0 to reach files of any owner but needs
// nothing else of root (a volume server over a host directory): every
// capability but those in `keep` leaves the bounding, permitted, effective,
// inheritable and ambient sets, and no_new_privs is set. Returns 0 or the
// errno of the step that failed.
int keep_only_capabilities(const int* keep, int count);

// For the shim, first thing: it will hold secrets' values and the guest's
// memory is shared with it. No core dumps (RLIMIT_CORE 0, inherited by
// QEMU, whose dump would be the guest's RAM), not dumpable (other processes
// of the same user cannot ptrace it or read its memory), and no privilege
// gained by what it execs (no_new_privs). Returns 0 or the errno of the
// step that failed.
int seal_process();

}  // namespace moat::jail
