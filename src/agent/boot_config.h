// What the host asks of the guest at boot, read from the kernel command line
// (moat.* options). The shim writes them; see src/vm/qemu_command.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proto/guest_mount.h"

namespace moat::agent {

enum class RootMode {
  kNone,     // stay in the initramfs (diagnostics only)
  kOverlay,  // read-only lower (vda) + writable ext4 upper (vdb), joined by overlayfs
  kWritable, // a single writable ext4 root (vda)
  kVirtiofs  // the virtio-fs mount at "/" (moat.mount) is the root itself
};

struct BootConfig {
  RootMode root = RootMode::kNone;
  std::string lower_fs = "ext4";  // "ext4" or "erofs"
  std::string hostname = "moat";
  std::string port_name = "agent";  // virtio-serial port of the protocol
  // moat.net=1: the VM has a network device, and eth0 gets the fixed
  // addresses of proto/guest_network.h. Without it only loopback exists.
  bool network = false;
  std::vector<proto::GuestMount> mounts;  // moat.mount=, in order
  // A moat.mount= the agent could not read: the host wrote something wrong,
  // and booting without the mount would hide it, so boot fails with this.
  std::string mount_error;
};

// Parses a kernel command line; unknown words are ignored.
BootConfig parse_boot_config(std::string_view cmdline);

}  // namespace moat::agent
