#include "image/store/directory_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <map>
#include <utility>
#include <vector>

#include "image/erofs/erofs_writer.h"
#include "util/temp_output.h"
#include "store/moat_home.h"
#include "store/tree_digest.h"
#include "util/unique_fd.h"

namespace moat::image {
namespace {

constexpr int kMaxDepth = 256;

FileType type_of(mode_t mode) {
  if (S_ISDIR(mode)) return FileType::kDirectory;
  if (S_ISLNK(mode)) return FileType::kSymlink;
  if (S_ISCHR(mode)) return FileType::kCharDevice;
  if (S_ISBLK(mode)) return FileType::kBlockDevice;
  if (S_ISFIFO(mode)) return FileType::kFifo;
  if (S_ISSOCK(mode)) return FileType::kSocket;
  return FileType::kRegular;
}

class TreeReader {
 public:
  explicit TreeReader(Spool& spool) : spool_(spool) {}

  Status read_dir(int dirfd, const std::string& path, Inode& dir, int depth) {
    if (depth > kMaxDepth) return make_error("directory tree deeper than 256 levels at " + path);
    MOAT_ASSIGN_OR_RETURN(auto names, store::sorted_entries(dirfd, path));
    for (const auto& name : names) {
      MOAT_TRY(validate_entry_name(name).ok() ? ok_status()
                                                     : make_error("unsupported file name in " + path));
      MOAT_ASSIGN_OR_RETURN(auto inode, read_entry(dirfd, name, path + "/" + name, depth));
      dir.children[name] = std::move(inode);
    }
    return ok_status();
  }

  Status fill_metadata(Inode& inode, const struct stat& st, const std::string& path) {
    inode.mode = st.st_mode & 07777;
    inode.uid = st.st_uid;
    inode.gid = st.st_gid;
    inode.mtime = {st.st_mtim.tv_sec, static_cast<std::uint32_t>(st.st_mtim.tv_nsec)};
    return read_xattrs(inode, path);
  }

 private:
  Result<InodePtr> read_entry(int dirfd, const std::string& name, const std::string& path, int depth) {
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno_error("stat " + path);
    // Hardlinks: one inode for every name of the same host file.
    auto key = std::make_pair(st.st_dev, st.st_ino);
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      if (auto it = links_.find(key); it != links_.end()) return it->second;
    }
    auto inode = make_inode(type_of(st.st_mode));
    MOAT_TRY(fill_metadata(*inode, st, path));
    switch (inode->type) {
      case FileType::kDirectory: {
        UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) return errno_error("open " + path);
        MOAT_TRY(read_dir(sub.get(), path, *inode, depth + 1));
        break;
      }
      case FileType::kSymlink: {
        char target[4096];
        ssize_t n = ::readlinkat(dirfd, name.c_str(), target, sizeof(target));
        if (n < 0) return errno_error("readlink " + path);
        inode->symlink_target.assign(target, static_cast<std::size_t>(n));
        break;
      }
      case FileType::kCharDevice:
      case FileType::kBlockDevice:
        inode->rdev_major = major(st.st_rdev);
        inode->rdev_minor = minor(st.st_rdev);
        break;
      case FileType::kRegular: {
        UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) return errno_error("open " + path);
        MOAT_ASSIGN_OR_RETURN(inode->content, copy_content(fd.get(), path));
        break;
      }
      default:
        break;
    }
    MOAT_TRY(validate_inode(*inode));
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) links_[key] = inode;
    return inode;
  }

  Result<ContentRef> copy_content(int fd, const std::string& path) {
    spool_.begin();
    char buf[1 << 16];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error("read " + path);
      if (n == 0) break;
      MOAT_TRY(spool_.append(buf, static_cast<std::size_t>(n)));
    }
    return spool_.finish();
  }

  Status read_xattrs(Inode& inode, const std::string& path) {
    char names[65536];
    ssize_t len = ::llistxattr(path.c_str(), names, sizeof(names));
    if (len < 0) return (errno == ENOTSUP || errno == ENODATA) ? ok_status() : errno_error("list xattrs of " + path);
    for (ssize_t off = 0; off < len;) {
      std::string name(names + off);
      off += static_cast<ssize_t>(name.size()) + 1;
      char value[65536];
      ssize_t vlen = ::lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
      if (vlen < 0) continue;  // vanished or unreadable for us: not part of the image
      inode.xattrs[name] = std::string(value, static_cast<std::size_t>(vlen));
    }
    return ok_status();
  }

  Spool& spool_;
  std::map<std::pair<dev_t, ino_t>, InodePtr> links_;
};

}  // namespace

Status read_directory_tree(const std::string& dir, FsTree& tree, Spool& spool) {
  UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return errno_error("root filesystem directory " + dir);
  struct stat st {};
  if (::fstat(root.get(), &st) != 0) return errno_error("stat " + dir);
  TreeReader reader(spool);
  MOAT_TRY(reader.fill_metadata(tree.root(), st, dir));
  return reader.read_dir(root.get(), dir, tree.root(), 0);
}

Result<std::string> erofs_from_directory(const std::string& dir, const std::string& cache_dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return errno_error("root filesystem directory " + dir);
  if (!S_ISDIR(st.st_mode)) return make_error("root filesystem " + dir + " is not a directory");
  MOAT_ASSIGN_OR_RETURN(auto digest, store::tree_digest(dir));
  std::string out_dir = cache_dir + "/rootfs";
  MOAT_TRY(store::make_dirs(out_dir, 0700));
  std::string image = out_dir + "/" + digest.substr(0, 32) + ".erofs";
  if (::access(image.c_str(), F_OK) == 0) return image;

  MOAT_ASSIGN_OR_RETURN(auto spool, Spool::create(out_dir));
  FsTree tree;
  MOAT_TRY(read_directory_tree(dir, tree, spool));
  MOAT_ASSIGN_OR_RETURN(auto out, TempOutput::create(image));
  auto written = write_erofs(tree, spool, out.fd());
  if (!written) return written.error().wrap("building an EROFS root from " + dir);
  MOAT_TRY(out.commit());
  return image;
}

}  // namespace moat::image
