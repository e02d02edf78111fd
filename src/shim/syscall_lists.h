// What the shim and a volume server may ask of the kernel once they serve a
// guest (jail/syscall_filter.h; docs/security.md, "The shim").
//
// Both lists are built from what the code and its libraries (glibc,
// OpenSSL, libslirp, libstdc++) call while serving, not while setting up:
// the filters go on after every file, socket and child that set-up needs
// exists. Left out on purpose, from both: exec, new processes, ptrace and
// process_vm_*, mount and namespace calls, module, key, BPF, perf and
// io_uring calls, identity and capability changes, open_by_handle_at.
#pragma once

#include <string>

#include "jail/syscall_filter.h"

namespace moat::shim {

// The shim while it serves: the event loop, its clients and the agent
// channel, the network (host sockets, DNS, TLS), logs and the sandbox
// directory, signalling and reaping QEMU.
jail::SyscallFilter shim_syscall_filter();

// A volume server: vhost-user messages and guest memory, and the file
// calls of the directory backend. No sockets of its own beyond the one it
// inherits, no signals to others.
jail::SyscallFilter volume_server_syscall_filter(const std::string& who);

// A root reader (root_reader_process.h): reading the disks it holds open and
// writing to its pipes. No file may be opened.
jail::SyscallFilter root_reader_syscall_filter();

}  // namespace moat::shim
