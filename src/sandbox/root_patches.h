// Pre-boot patches (SandboxOptions::patches): written into a new sandbox's
// writable upper disk before its first boot, with the read-only lower (an
// image's EROFS or a --rootfs-dir tree) consulted for the attributes of the
// directories they pass through.
#pragma once

#include <string>

#include "moat/sandbox.h"
#include "vm/qemu_command.h"

namespace moat::sandbox {

// `spec` is what prepare_root_disks made: disks[0] the lower, disks[1] the upper.
Status apply_root_patches(const SandboxOptions& o, const vm::VmSpec& spec);

// Whether the EROFS image has something at the absolute guest path
// (symlinks not followed).
Result<bool> lower_has_path(const std::string& erofs_path, const std::string& guest_path);

}  // namespace moat::sandbox
