// Volumes of sandboxes, the manager's side: where named volumes live, how a
// sandbox's -v/--tmpfs list is checked and resolved at create time, and how
// it becomes the shim's virtio-fs shares and the guest's mounts.
#pragma once

#include <string>
#include <vector>

#include "moat/sandbox.h"
#include "shim_contract/shim_config.h"
#include "util/result.h"

namespace moat::sandbox {

std::string volumes_dir(const std::string& home);
std::string volume_data_path(const std::string& home, const std::string& name);
// Held while a sandbox record takes a volume and while a volume is removed,
// so a removal never misses a sandbox about to use it.
std::string volumes_lock_path(const std::string& home);

// Checks every mount and returns them resolved: guest paths clean and
// distinct (never "/"), host directories absolute, real and existing,
// named volumes created if missing. `tmpfs` is what resolve_tmpfs_mounts
// returned (clean paths); it only takes part in the check for two mounts
// at one path. Call with the volumes lock held.
Result<std::vector<VolumeMount>> resolve_volume_mounts(const std::string& home, const std::vector<VolumeMount>& mounts,
                                                       const std::vector<TmpfsMount>& tmpfs);
Result<std::vector<TmpfsMount>> resolve_tmpfs_mounts(const std::vector<TmpfsMount>& tmpfs);
// The mount of a shared root (SandboxOptions::rootfs_share): the real host
// directory at guest path "/", writable unless read_only. `others` is how many volumes and
// tmpfs mounts the sandbox has besides (the root counts towards the limit).
Result<VolumeMount> root_share_mount(const std::string& directory, bool read_only, std::size_t others);

// Whether the VM of `cfg` (its disks known) has a device slot for every
// volume: EINVAL saying how many fit otherwise.
Status check_device_slots(const shim::ShimConfig& cfg);

// Adds the shares (served by the shim) and guest mounts of resolved mounts
// to a shim config; fails if the kernel command line would not hold them.
Status add_sandbox_mounts(const std::string& home, const std::vector<VolumeMount>& volumes,
                          const std::vector<TmpfsMount>& tmpfs, shim::ShimConfig& cfg);

}  // namespace moat::sandbox
