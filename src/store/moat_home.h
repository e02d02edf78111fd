// Layout of moat's state directory ($MOAT_HOME, default ~/.local/share/moat):
//   sandboxes/<id>/   one directory per sandbox (shim socket, logs, upper disk)
//   snapshots/<id>/   one directory per disk snapshot (sandbox/snapshot_store.h)
//   cache/rootfs/     ext4 images built from --rootfs-dir trees, by content digest
//   cache/upper/      empty upper-disk templates, by size
#pragma once

#include <string>

#include "util/result.h"

namespace moat::store {

// Resolves and creates (mode 0700) the state directory.
Result<std::string> moat_home();

std::string sandboxes_dir(const std::string& home);
// The $MOAT_HOME of one of its sandbox directories (sandboxes_dir(home)/ID).
std::string home_of_sandbox_dir(const std::string& dir);
std::string cache_dir(const std::string& home);

// mkdir -p with a mode for directories it creates.
Status make_dirs(const std::string& path, unsigned mode = 0755);

// Removes a directory tree without following symlinks out of it.
Status remove_tree(const std::string& path);

// A random lowercase hex id of `hex_chars` characters.
std::string random_id(std::size_t hex_chars = 12);

}  // namespace moat::store
