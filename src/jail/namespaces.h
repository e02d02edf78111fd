// Fresh namespaces for a child moat starts beside a guest (docs/security.md).
//
// QEMU needs none of what the host's namespaces would show it: every
// channel it uses is a descriptor it inherits, so it gets an empty network
// namespace, its own PID namespace (it is process 1 there and sees no other
// process), its own IPC and UTS namespaces, and a mount namespace in which
// the jail's root is built (root_tree.h).
#pragma once

#include <sched.h>
#include <sys/types.h>

namespace moat::jail {

inline constexpr int kQemuNamespaces = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
// A volume server needs no more of the host than QEMU: its directory is
// bound into its own root, its socket is inherited.
inline constexpr int kVolumeServerNamespaces = kQemuNamespaces;

// fork(), except that the child starts in fresh namespaces of `flags`:
// the pid in the parent, 0 in the child, -1 (errno set) on failure. As
// after fork() in a multi-threaded process, the child may make only
// async-signal-safe calls before it execs; and it must not use glibc's
// thread-aware calls (raise, abort), which would act on the parent's
// thread id.
pid_t fork_into_namespaces(int flags);

}  // namespace moat::jail
