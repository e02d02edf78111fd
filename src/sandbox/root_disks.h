// Turns the root filesystem a user asked for into the disks of a VM:
// a read-only lower (cached ext4 from a directory, or an image file) plus a
// fresh writable upper, or one writable ext4 image on its own.
#pragma once

#include <string>

#include "moat/sandbox.h"
#include "vm/qemu_command.h"

namespace moat::sandbox {

enum class ImageKind { kUnknown, kExt4, kErofs };

// By superblock magic.
Result<ImageKind> detect_image_kind(const std::string& path);

// Fills spec.disks, spec.root_mode and spec.lower_fs. The upper disk (if
// any) is created at sandbox_dir/upper.ext4: empty, or a copy of
// `upper_from` when that is given.
Status prepare_root_disks(const SandboxOptions& o, const std::string& sandbox_dir, const std::string& cache_dir,
                          vm::VmSpec& spec, const std::string& upper_from = "");

}  // namespace moat::sandbox
