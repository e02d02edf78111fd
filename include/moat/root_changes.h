// A sandbox's root read from its disks (docs/snapshots.md, "Diff", "Export"):
// what changed against the image, as `docker diff` lists it, and the whole
// root as a tar. Works on a created, stopped or running sandbox (a running
// one's disk is frozen for a moment and copied first).
#pragma once

#include <cstdint>
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
inline char to_char(RootChange::Kind kind) {
  return kind == RootChange::Kind::kAdded ? 'A' : kind == RootChange::Kind::kDeleted ? 'D' : 'C';
}

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
// The same into `path`, which appears only once the tar is whole (written
// beside it under a temporary name, synced, renamed).
Status export_sandbox_to_file(const std::string& id_or_name, const std::string& path);

struct CommitOptions {
  // Dockerfile instructions applied to the new image's config, as `docker
  // commit --change` takes them: CMD, ENTRYPOINT (JSON array, or a shell
  // form run by /bin/sh -c), ENV K=V..., WORKDIR, USER, LABEL K=V....
  std::vector<std::string> changes;
  std::vector<std::string> env;  // KEY=VALUE, added (replacing a KEY the image sets)
  std::string workdir;           // "" keeps the image's
  std::string message;           // the new history entry's comment
};

struct CommittedImage {
  std::string ref;              // as recorded in the store
  std::string manifest_digest;
  std::string layer_digest;     // the new layer (gzip)
  std::uint64_t layer_size = 0;
};

// A new image in the local store, named `ref`: the sandbox's image's layers
// plus one layer made from its upper disk (OCI whiteouts and opaque
// markers; docs/snapshots.md, "Commit"). Needs an image root (EINVAL for
// --rootfs-dir and --rootfs-image roots: use export). `moat image save`
// writes it out for other tools.
Result<CommittedImage> commit_sandbox(const std::string& id_or_name, const std::string& ref,
                                      const CommitOptions& options = {});

}  // namespace moat
