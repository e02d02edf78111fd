// The sandbox's own mounts besides the root: virtio-fs volumes and tmpfs
// instances, made at boot from the moat.mount= words of the command line.
#pragma once

#include <vector>

#include "proto/guest_mount.h"
#include "util/result.h"

namespace moat::agent {

// Mounts each one in the current root, parents before children, creating
// the mount point (and its parents, 0755) where the image lacks it.
Status mount_sandbox_filesystems(const std::vector<proto::GuestMount>& mounts);

}  // namespace moat::agent
