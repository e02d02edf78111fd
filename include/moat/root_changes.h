// A sandbox's root read from its disks (docs/snapshots.md, "Diff", "Export"):
// what changed against the image, as `docker diff` lists it, and the whole
// root as a tar. Works on a created, stopped or running sandbox (a running
// one's disk is frozen for a moment and copied first).
#pragma once

#include <string>
#include <vector>

#include "moat/result.h"

namespace moat {

struct RootChange {
  enum class Kind { kAdded, kChanged, kDeleted };
  Kind kind = Kind::kChanged;
  std::string path;  // absolute, as the guest sees it
};

// 'A', 'C' or 'D'.
char to_char(RootChange::Kind kind);

// In path order, a directory before what is below it. EINVAL for a root
// that is not an image or --rootfs-dir (an ext4 lower, or a writable root);
// EUCLEAN for a stopped sandbox whose disk was not cleanly unmounted.
Result<std::vector<RootChange>> diff_sandbox(const std::string& id_or_name);

// The root as the guest sees it, as a pax tar written to `fd`: owners, modes,
// nanosecond mtimes, xattrs (overlayfs's own left out), symlinks, devices,
// fifos, hard links as links; sockets left out. The mount points of the
// guest's own filesystems (/proc, /sys, /dev, /tmp, /run) are there as the
// image has them, empty; volumes are not part of it.
Status export_sandbox(const std::string& id_or_name, int fd);

}  // namespace moat
