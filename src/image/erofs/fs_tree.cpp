#include "image/erofs/fs_tree.h"

#include <cerrno>

namespace moat::image {

const char* file_type_name(FileType type) {
  switch (type) {
    case FileType::kRegular: return "regular file";
    case FileType::kDirectory: return "directory";
    case FileType::kSymlink: return "symlink";
    case FileType::kCharDevice: return "character device";
    case FileType::kBlockDevice: return "block device";
    case FileType::kFifo: return "fifo";
    case FileType::kSocket: return "socket";
  }
  return "unknown";
}

std::uint64_t Inode::size() const {
  switch (type) {
    case FileType::kRegular: return content.size;
    case FileType::kSymlink: return symlink_target.size();
    default: return 0;
  }
}

InodePtr make_inode(FileType type, std::uint32_t mode) {
  auto inode = std::make_shared<Inode>();
  inode->type = type;
  inode->mode = mode & 07777;
  return inode;
}

Status validate_entry_name(std::string_view name) {
  if (name.empty()) return make_error("empty file name", EINVAL);
  if (name.size() > kMaxNameLength) {
    return make_error("file name longer than 255 bytes", ENAMETOOLONG);
  }
  if (name == "." || name == "..") return make_error("file name '" + std::string(name) + "'", EINVAL);
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return make_error("file name contains '/' or NUL", EINVAL);
  }
  return ok_status();
}

Status validate_inode(const Inode& inode) {
  if (inode.mode & ~07777u) return make_error("mode has bits outside 07777", EINVAL);
  if (inode.mtime.nsec >= 1000000000u) return make_error("mtime nanoseconds out of range", EINVAL);
  for (const auto& [name, value] : inode.xattrs) {
    if (name.empty() || name.size() > kMaxXattrNameLength) {
      return make_error("xattr name length out of range", EINVAL);
    }
    if (value.size() > kMaxXattrValueSize) {
      return make_error("xattr " + name + " value larger than 65535 bytes", E2BIG);
    }
  }
  if (inode.type == FileType::kSymlink &&
      (inode.symlink_target.empty() || inode.symlink_target.size() > kMaxSymlinkLength ||
       inode.symlink_target.find('\0') != std::string::npos)) {
    return make_error("symlink target must be 1..4095 bytes without NUL", EINVAL);
  }
  if ((inode.type == FileType::kCharDevice || inode.type == FileType::kBlockDevice) &&
      (inode.rdev_major > kMaxDevMajor || inode.rdev_minor > kMaxDevMinor)) {
    return make_error("device number out of range", ERANGE);
  }
  if (!inode.is_dir() && !inode.children.empty()) {
    return make_error("non-directory with children", EINVAL);
  }
  return ok_status();
}

FsTree::FsTree() : root_(make_inode(FileType::kDirectory, 0755)) {}

}  // namespace moat::image
