#include "sandbox/root_patches.h"

#include <cerrno>
#include <memory>

#include "image/erofs/erofs_reader.h"
#include "store/upper_patch.h"

namespace moat::sandbox {
namespace {

// What the sandbox's read-only lower holds at a path, read straight from
// its EROFS image (no mount). Symlinks are never followed: anything below
// one does not exist, as the patch rules require.
Result<store::LowerLookup> erofs_lower_lookup(const std::string& image_path) {
  MOAT_ASSIGN_OR_RETURN(auto reader, image::ErofsReader::open(image_path));
  auto shared = std::make_shared<image::ErofsReader>(std::move(reader));
  return store::LowerLookup([shared](const std::string& path) -> Result<std::optional<store::LowerEntry>> {
    auto nid = shared->lookup_path(path);
    if (!nid) {
      if (nid.error().code == ENOENT || nid.error().code == ENOTDIR) return std::optional<store::LowerEntry>{};
      return nid.error();
    }
    MOAT_ASSIGN_OR_RETURN(auto ino, shared->inode(*nid));
    return std::optional<store::LowerEntry>(store::LowerEntry{ino.mode, ino.uid, ino.gid, ino.mtime_sec});
  });
}

}  // namespace

Result<bool> lower_has_path(const std::string& erofs_path, const std::string& guest_path) {
  MOAT_ASSIGN_OR_RETURN(auto lookup, erofs_lower_lookup(erofs_path));
  MOAT_ASSIGN_OR_RETURN(auto entry, lookup(guest_path));
  return entry.has_value();
}

Status apply_root_patches(const SandboxOptions& o, const vm::VmSpec& spec) {
  if (o.patches.empty()) return ok_status();
  if (spec.root_mode != "overlay" || spec.disks.size() < 2)
    return make_error("pre-boot patches need an overlay root; a --writable-root image is changed by booting it",
                      EINVAL);
  if (spec.lower_fs != "erofs")
    return make_error("pre-boot patches need an image or --rootfs-dir root (an EROFS lower), not an ext4 image",
                      EINVAL);
  MOAT_ASSIGN_OR_RETURN(auto lower, erofs_lower_lookup(spec.disks[0].path));
  auto st = store::apply_upper_patches(spec.disks[1].path, o.patches, lower);
  if (!st) return st.error().wrap("applying pre-boot patches");
  return ok_status();
}

}  // namespace moat::sandbox

