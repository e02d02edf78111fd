// The QEMU command line of a sandbox VM: the microvm machine, virtio-mmio
// devices only, the kernel booted directly (PVH entry of the ELF vmlinux),
// the agent channel on an inherited socket.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/guest_mount.h"
#include "vm/accel.h"

namespace moat::vm {

struct DiskSpec {
  std::string path;
  bool read_only = false;
  // At run time: the descriptor number QEMU inherits the opened disk at
  // (-add-fd); QEMU then opens no path, so a jailed QEMU needs neither the
  // file in its root nor the right to open it. -1: QEMU opens `path`.
  int fd = -1;
  // A writable disk also needs a read-only descriptor of the same file in
  // its set: QEMU opens it read-only first, and a set hands out only a
  // descriptor of the access mode asked for.
  int read_only_fd = -1;
};

// A vhost-user-fs device: its backend (the shim) is on the other end of the
// connected socket QEMU inherits as `fd`; the guest mounts it by tag.
struct FsShareSpec {
  std::string tag;
  int fd = -1;
};

struct VmSpec {
  std::string qemu = "qemu-system-x86_64";
  // QEMU's -name: the sandbox's directory, so that `ps` says whose QEMU a
  // process is (its command line names no other file of the sandbox).
  std::string name;
  std::string kernel;
  std::string initrd;
  Accel accel = Accel::kTcg;
  int cpus = 1;
  std::uint32_t cpu_weight = 100;  // for QEMU's cgroup (shim/qemu_jail.h); not a QEMU argument
  std::uint32_t io_weight = 0;     // likewise; 0: the kernel's default
  int memory_mib = 256;
  // Where the guest's RAM lives (-machine memory-backend=mem). With neither
  // set it is QEMU's own anonymous memory (a shared memfd when there are
  // fs_shares, whose backends read it).
  //  - ram_fd >= 0: a memfd QEMU inherits at that number and maps shared
  //    (mem-path=/proc/self/fd/N), so that the shim can copy the RAM as it
  //    is into a memory snapshot's RAM file.
  //  - ram_file: a memory snapshot's RAM file as QEMU sees it, mapped
  //    private: the page cache's pages serve every sandbox restored from it
  //    until one writes a page and gets its own copy. QEMU opens it
  //    read-only through ram_open_preload (qemu_environment()).
  int ram_fd = -1;
  std::string ram_file;
  std::string ram_open_preload;  // the shared object that does it (LD_PRELOAD)
  // TCG translation cache; QEMU's default (1 GiB on 64-bit hosts) lets the
  // host RSS of an idle guest grow far past what it needs.
  int tcg_tb_size_mib = 16;
  // Under TCG: the host's TSC rate, which is the guest's (vm/host_tsc.h),
  // given to the guest kernel as tsc_early_khz. 0: the guest measures it.
  std::uint32_t tsc_khz = 0;
  // Guest disks in order: the first is /dev/vda, the second /dev/vdb.
  std::vector<DiskSpec> disks;
  std::string root_mode = "overlay";  // moat.root: overlay | rw | virtiofs (the mount at "/")
  std::string lower_fs = "ext4";      // moat.lowerfs
  std::string hostname = "moat";
  int agent_fd = 3;                   // fd of a connected socket QEMU inherits
  // The guest's serial console: a connected socket QEMU inherits, whose other
  // end the shim copies into a capped console.log.
  int console_fd = 4;
  // The guest's network device: a connected stream socket QEMU inherits,
  // carrying Ethernet frames to the shim's user-mode stack (QEMU's
  // `-netdev stream` framing: a 4-byte big-endian length before each
  // frame). -1: no network device, and the guest has only loopback.
  int net_fd = -1;
  // QEMU's machine protocol (QMP): a connected socket QEMU inherits, on
  // which the shim pauses and resumes the VM. -1: no monitor at all.
  int qmp_fd = -1;
  // Restoring a saved VM: QEMU waits for its state (-incoming defer), which
  // the shim then feeds it through the monitor (migrate-incoming).
  bool incoming = false;
  std::vector<std::string> extra_kernel_args;
  // What the agent mounts besides the root (moat.mount= on the command line).
  std::vector<proto::GuestMount> mounts;
  // virtio-fs devices. Their backend reads guest memory directly, so with
  // any share the guest RAM becomes a shared memfd instead of private memory.
  std::vector<FsShareSpec> fs_shares;
  // Appended to QEMU's command line as they are. Not set by moat itself:
  // for experiments and benchmarks that edit a created sandbox's
  // config.json (bench/volume.sh adds a virtio-9p device this way).
  std::vector<std::string> extra_qemu_args;
};

// QEMU's microvm machine has eight virtio-mmio transports, one device each;
// entropy and the agent's serial port always take two. A ninth device fails
// QEMU's start ("No 'virtio-bus' bus found"), so callers count first.
inline constexpr std::size_t kMicrovmVirtioSlots = 8;
inline constexpr std::size_t kFixedVirtioDevices = 2;
// The most the x86 kernel keeps of its command line (COMMAND_LINE_SIZE).
inline constexpr std::size_t kMaxKernelCommandLine = 2047;

std::vector<std::string> build_qemu_command(const VmSpec& spec);

// QEMU's own seccomp filter on all its threads once it has set up
// (docs/security.md): no obsolete system calls, no privilege changes, no
// new processes, no scheduler or affinity changes.
inline constexpr char kQemuSandboxOptions[] =
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

// What QEMU's environment must add for `spec` (KEY=VALUE entries): the
// read-only open of a snapshot's RAM file.
std::vector<std::string> qemu_environment(const VmSpec& spec);

// The kernel command line the guest gets (also used by tests).
std::string kernel_command_line(const VmSpec& spec);

}  // namespace moat::vm
