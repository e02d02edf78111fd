#include "sandbox/root_disks.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>

#include "image/store/directory_image.h"
#include "shim_contract/sandbox_layout.h"
#include "store/ext4_image.h"
#include "store/sparse_copy.h"
#include "util/unique_fd.h"
#include "vm/runtime_files.h"

namespace moat::sandbox {

Result<ImageKind> detect_image_kind(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("root filesystem image " + path);
  unsigned char sb[2048] = {};
  ssize_t n = ::pread(fd.get(), sb, sizeof(sb), 0);
  if (n < 0) return errno_error("read " + path);
  // EROFS: magic 0xE0F5E1E2 (little-endian) at byte 1024.
  if (n >= 1028 && sb[1024] == 0xe2 && sb[1025] == 0xe1 && sb[1026] == 0xf5 && sb[1027] == 0xe0)
    return ImageKind::kErofs;
  // ext2/3/4: magic 0xEF53 at byte 1024 + 56.
  if (n >= 1082 && sb[1080] == 0x53 && sb[1081] == 0xef) return ImageKind::kExt4;
  return ImageKind::kUnknown;
}

Status prepare_root_disks(const SandboxOptions& o, const std::string& sandbox_dir, const std::string& cache_dir,
                          vm::VmSpec& spec, const std::string& upper_from) {
  if (!o.rootfs_dir.empty() && !o.rootfs_image.empty())
    return make_error("give either a root filesystem directory or an image, not both");
  if (!o.rootfs_share.empty()) {
    // No disk: the root is the volume at "/" (the record's first volume),
    // which the agent mounts and switches into.
    spec.disks.clear();
    spec.root_mode = "virtiofs";
    spec.lower_fs.clear();
    return ok_status();
  }
  std::string lower;
  ImageKind kind = ImageKind::kExt4;
  if (!o.rootfs_image.empty()) {
    MOAT_ASSIGN_OR_RETURN(kind, detect_image_kind(o.rootfs_image));
    if (kind == ImageKind::kUnknown)
      return make_error("root filesystem image " + o.rootfs_image + " is neither ext4 nor EROFS");
    char buf[PATH_MAX];
    lower = ::realpath(o.rootfs_image.c_str(), buf) ? buf : o.rootfs_image;
  } else {
    if (o.writable_root) return make_error("a writable root needs a root filesystem image (--rootfs-image)");
    std::string dir = o.rootfs_dir;
    if (dir.empty()) { MOAT_ASSIGN_OR_RETURN(dir, vm::find_default_rootfs()); }
    MOAT_ASSIGN_OR_RETURN(lower, image::erofs_from_directory(dir, cache_dir));
    kind = ImageKind::kErofs;
  }
  if (o.writable_root) {
    if (!upper_from.empty()) return make_error("a writable root cannot start from another sandbox's disk", EINVAL);
    if (kind != ImageKind::kExt4) return make_error("a writable root must be an ext4 image");
    if (::access(lower.c_str(), W_OK) != 0) return errno_error("writable root " + lower);
    spec.disks = {{lower, false}};
    spec.root_mode = "rw";
    spec.lower_fs = "ext4";
    return ok_status();
  }
  std::string upper = shim::upper_disk_path(sandbox_dir);
  if (upper_from.empty()) {
    MOAT_TRY(store::make_upper_disk(upper, o.disk_size_mib, cache_dir));
  } else {
    MOAT_TRY(store::sparse_copy(upper_from, upper));
  }
  spec.disks = {{lower, true}, {upper, false}};
  spec.root_mode = "overlay";
  spec.lower_fs = kind == ImageKind::kErofs ? "erofs" : "ext4";
  return ok_status();
}

}  // namespace moat::sandbox
