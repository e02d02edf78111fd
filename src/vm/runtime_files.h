// Where the files a VM needs come from: QEMU, the guest kernel, the
// initramfs, the shim binary and the bundled default root filesystem.
// Each can be overridden by an environment variable; otherwise they are found
// next to the running binary (<bindir>/../share/moat/...) or on PATH.
#pragma once

#include <string>

#include "util/result.h"

namespace moat::vm {

// Directory of the running executable.
std::string executable_dir();

// The first executable `name` in a directory of $PATH (an empty entry is
// the working directory; no $PATH: /usr/local/bin:/usr/bin:/bin), or "".
std::string find_on_path(const std::string& name);

Result<std::string> find_qemu();        // $MOAT_QEMU, else qemu-system-x86_64 on PATH
Result<std::string> find_kernel();      // $MOAT_KERNEL, else share/moat/vmlinux
Result<std::string> find_initramfs();   // $MOAT_INITRAMFS, else share/moat/initramfs.cpio
Result<std::string> find_shim();        // $MOAT_SHIM, else <bindir>/moat-shim
Result<std::string> find_default_rootfs();
// The shared object QEMU preloads to open a memory snapshot's RAM file
// read-only (src/qemu_preload): <bindir>/../lib/moat/moat-read-only-ram.so.
Result<std::string> find_read_only_ram_preload();  // $MOAT_DEFAULT_ROOTFS, else share/moat/rootfs-busybox

// First line of `qemu --version`, for doctor.
std::string qemu_version(const std::string& qemu);

// Whether `qemu` takes moat's -sandbox options (a QEMU built without
// seccomp does not, and could not start a sandbox): "" if it does, else
// what QEMU said.
std::string qemu_sandbox_refusal(const std::string& qemu);

}  // namespace moat::vm
