// The QEMU command line of a sandbox VM: the microvm machine, virtio-mmio
// devices only, the kernel booted directly (PVH entry of the ELF vmlinux),
// the agent channel on an inherited socket.
#pragma once

#include <string>
#include <vector>

#include "vm/accel.h"

namespace moat::vm {

struct DiskSpec {
  std::string path;
  bool read_only = false;
};

struct VmSpec {
  std::string qemu = "qemu-system-x86_64";
  std::string kernel;
  std::string initrd;
  Accel accel = Accel::kTcg;
  int cpus = 1;
  int memory_mib = 256;
  // TCG translation cache; QEMU's default (1 GiB on 64-bit hosts) lets the
  // host RSS of an idle guest grow far past what it needs.
  int tcg_tb_size_mib = 16;
  // Guest disks in order: the first is /dev/vda, the second /dev/vdb.
  std::vector<DiskSpec> disks;
  std::string root_mode = "overlay";  // moat.root: overlay | rw
  std::string lower_fs = "ext4";      // moat.lowerfs
  std::string hostname = "moat";
  int agent_fd = 3;                   // fd of a connected socket QEMU inherits
  std::string console_log;            // guest serial console goes here
  std::vector<std::string> extra_kernel_args;
};

std::vector<std::string> build_qemu_command(const VmSpec& spec);

// The kernel command line the guest gets (also used by tests).
std::string kernel_command_line(const VmSpec& spec);

}  // namespace moat::vm
