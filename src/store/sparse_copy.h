// Copies a disk image without materialising its holes: a reflink where the
// filesystem can share blocks, otherwise data ranges only (SEEK_DATA/HOLE).
#pragma once

#include <string>

#include "util/result.h"

namespace moat::store {

Status sparse_copy(const std::string& from, const std::string& to);

}  // namespace moat::store
