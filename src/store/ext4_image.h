// ext4 disk images on the host: a read-only root built from a directory tree
// (cached by the tree's content digest), and empty writable upper disks
// (copied sparse from a cached template, so a new sandbox costs no mkfs).
#pragma once

#include <cstdint>
#include <string>

#include "util/result.h"

namespace moat::store {

// Returns the path of an ext4 image holding `dir`, building it with
// `mkfs.ext4 -d` into cache_dir/rootfs/<digest>.ext4 if it is not there yet.
Result<std::string> ext4_from_directory(const std::string& dir, const std::string& cache_dir);

// Creates `path` as an empty ext4 filesystem of `size_mib` (sparse).
Status make_upper_disk(const std::string& path, std::uint64_t size_mib, const std::string& cache_dir);

}  // namespace moat::store
