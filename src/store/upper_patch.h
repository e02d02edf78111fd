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

#include "store/lower_lookup.h"
#include "util/result.h"

namespace moat::store {

struct UpperPatch {
  enum class Kind { kCopy, kMkdir, kWrite, kRemove };
  Kind kind = Kind::kMkdir;
  // Absolute and lexically clean ("/a/b"). A trailing "/" is kept when the
  // user wrote one: for --copy of a non-directory it means "into this
  // directory, under the source's own name".
  std::string guest_path;
  std::string host_path;  // kCopy
  std::string text;       // kWrite: the file's exact bytes
  // Unset: the defaults (copy: the host permission bits; mkdir 0755; write
  // 0644; owner 0:0). Set: applied to everything the patch creates, and to
  // an existing directory it names (see the docs).
  std::optional<std::uint32_t> mode;
  std::optional<std::uint32_t> uid, gid;
};

// Bounds on untrusted command-line text.
inline constexpr std::size_t kMaxPatchText = 1 << 20;  // --write contents

// Parses the argument of --copy ("HOST:GUEST"), --mkdir ("GUEST"), --write
// ("GUEST=TEXT") or --delete ("GUEST"). The guest path must be absolute and may
// not climb out of "/" with "..". In HOST:GUEST the split is at the last ":/"
// (host paths may hold colons); in GUEST=TEXT at the first "=".
Result<UpperPatch> parse_patch(UpperPatch::Kind kind, std::string_view cli_text);

// Owner and mode given once for all patches (--chown, --chmod).
struct PatchDefaults {
  std::optional<std::uint32_t> mode;
  std::optional<std::uint32_t> uid, gid;
};

// "UID" or "UID:GID", numeric (a lone UID also sets the GID, as Docker does).
Result<PatchDefaults> parse_chown(std::string_view text);
// Octal permission bits, at most 07777 ("644", "0755", "4755").
Result<std::uint32_t> parse_chmod(std::string_view text);

// Fills each patch's unset mode/uid/gid from `defaults`.
void apply_patch_defaults(std::vector<UpperPatch>& patches, const PatchDefaults& defaults);

// Writes `patches`, in order, into the upper disk `upper_ext4` (made by
// make_upper_disk; it must not be in use). `lower` answers what the
// read-only lower layer holds. Host sources are checked before the disk is
// opened; an error later leaves a consistent but partly patched disk, which
// the caller discards with the sandbox.
Status apply_upper_patches(const std::string& upper_ext4, const std::vector<UpperPatch>& patches,
                           const LowerLookup& lower);

}  // namespace moat::store
