// Empty writable ext4 upper disks, copied sparse from a cached template so a
// new sandbox costs no mkfs.
#pragma once

#include <cstdint>
#include <string>

#include "util/result.h"

namespace moat::store {

// Creates `path` as an empty ext4 filesystem of `size_mib` (sparse).
Status make_upper_disk(const std::string& path, std::uint64_t size_mib, const std::string& cache_dir);

}  // namespace moat::store
