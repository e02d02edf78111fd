// A digest of a disk image's contents that does not depend on how the file
// stores them: holes and blocks of zeros count alike, so a reflinked copy, a
// sparse copy and a fully allocated one of the same disk digest the same.
// Snapshots record it at create and check it before a restore, which is how
// a truncated or damaged snapshot file is refused.
#pragma once

#include <cstdint>
#include <string>

#include "util/result.h"

namespace moat::store {

// "sha256:<hex>" over the file's size and then, for each 4 KiB block that is
// not all zeros, its offset and bytes. Reads only the file's data ranges.
Result<std::string> disk_content_digest(const std::string& path);

// The bytes the file takes on its filesystem (st_blocks * 512).
Result<std::uint64_t> allocated_bytes(const std::string& path);

}  // namespace moat::store
