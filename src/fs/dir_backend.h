// An FsBackend serving a host directory read-write (or read-only): the
// backing store of sandbox volumes.
//
// - Every name is resolved one component at a time from its parent's O_PATH
//   descriptor with O_NOFOLLOW (node_table.h): a symlink in the tree is
//   served as a symlink (READLINK gives its text) and never followed by the
//   server, so nothing the guest plants can make it reach a host file
//   outside `root`. Descriptors of regular files and directories are
//   reopened for I/O through /proc/self/fd only after checking their type.
// - Guest owners, modes (setuid/setgid/sticky included) and device numbers
//   are virtualized in the xattr `user.moat.stat` (dir_ownership.h, format
//   in stat_xattr.h); host files stay owned by the server's user with owner
//   read/write(/search) kept.
//   Devices, FIFOs and sockets made by MKNOD are empty regular host files.
//   Symlinks cannot carry user xattrs: they show the host's owner, and
//   chown/chmod of a symlink succeeds without effect.
// - Guest xattrs: `user.*` pass through; `trusted.*` and `security.*` are
//   kept as `user.moat.x.<name>`; `user.moat.*` itself is invisible to the
//   guest (ENODATA to read, EPERM to set or remove, absent from lists);
//   other namespaces (system.*) are EOPNOTSUPP (dir_xattr_names.h).
// - Open files and directories are handles of their node only, bounded by
//   max_open_handles (dir_handle_table.h).
// - On a host filesystem without user xattrs, the host's stat is reported,
//   chown to another owner and MKNOD of special files are EPERM, and chmod
//   changes the host mode (setuid/setgid bits dropped).
// - Entry and attribute TTLs are 1 s and no file data is cached across
//   opens: the host or another sandbox may change the tree at any time.
// - With a size limit, changes that would take the volume's usage past it
//   fail with ENOSPC (a write that partly fits is cut short), and STATFS
//   reports the limit; volume_quota.h says what counts and when.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fs/fs_backend.h"
#include "util/result.h"

namespace moat::fs {

struct DirBackendOptions {
  bool read_only = false;   // every change refused with EROFS by the server itself
  // Host files held open at once for the nodes the guest's kernel remembers
  // (one O_PATH descriptor each). Past it the least recently used node not
  // in use gives up its descriptor and is reopened on its next use
  // (node_table.h). Callers size it from their own descriptor limit so the
  // guest cannot exhaust it.
  std::size_t max_open_nodes = 1u << 20;
  // Files and directories the guest holds open at once (one host descriptor
  // each, and their nodes stay open). Past it opens fail with ENFILE, so a
  // guest cannot take the server's last descriptors either.
  std::size_t max_open_handles = 1u << 20;
  // Nodes known at once, open or not: what their records cost in memory
  // (a few hundred bytes each). Past it lookups fail with ENFILE.
  std::size_t max_nodes = 1u << 20;
  // Reopen nodes by file handle where the host allows it (CAP_DAC_READ_SEARCH);
  // off, only by name, as an unprivileged server does.
  bool file_handles = true;
  // Bytes the guest may use in the volume (volume_quota.h); 0: no limit.
  std::uint64_t size_limit = 0;
};

// Serves the host directory `root` (which must exist and be a directory).
Result<std::unique_ptr<FsBackend>> open_dir_backend(const std::string& root, DirBackendOptions options);

}  // namespace moat::fs
