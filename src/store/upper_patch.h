// Pre-boot patches: files, directories and removals written into a
// sandbox's writable upper disk (upper.ext4) before its first boot, with no
// VM and no root. The guest sees them through overlayfs exactly as if they
// had been made inside it: a guest path /etc/foo is /upper/etc/foo in the
// ext4, a removed lower file is a whiteout, and a directory created in the
// upper to hold a patch copies the lower directory's mode, owner and mtime.
// docs/sandbox-patches.md describes the rules and the CLI syntax.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "moat/sandbox.h"
#include "store/lower_lookup.h"
#include "util/result.h"

namespace moat::store {

// The public RootPatch (include/moat/sandbox.h) is the patch itself: what
// the command line parses is what gets written, with no second type.
using UpperPatch = moat::RootPatch;
using moat::PatchDefaults;

// Bounds on untrusted command-line text.
inline constexpr std::size_t kMaxPatchText = 1 << 20;  // --write contents

// The command-line grammar (parse_root_patch, parse_patch_owner,
// parse_patch_mode, apply_patch_defaults) is public: include/moat/sandbox.h.

// Writes `patches`, in order, into the upper disk `upper_ext4` (made by
// make_upper_disk; it must not be in use). `lower` answers what the
// read-only lower layer holds. Host sources are checked before the disk is
// opened; an error later leaves a consistent but partly patched disk, which
// the caller discards with the sandbox.
Status apply_upper_patches(const std::string& upper_ext4, const std::vector<UpperPatch>& patches,
                           const LowerLookup& lower);

}  // namespace moat::store
