#include "agent/tree_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace moat::agent {
namespace {

Error path_error(const std::string& what, int err) { return errno_error(what, err); }

std::string join(const std::vector<std::string>& c, std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count && i < c.size(); ++i) {
    if (i) out += '/';
    out += c[i];
  }
  return out;
}

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("write");
    if (n == 0) return make_error("write: no progress", EIO);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return ok_status();
}

}  // namespace

Result<std::vector<std::string>> split_archive_path(std::string_view path) {
  if (path.find('\0') != std::string_view::npos)
    return make_error("archive name contains a NUL byte", EINVAL);
  if (!path.empty() && path[0] == '/')
    return make_error("archive name \"" + std::string(path.substr(0, 200)) + "\" is absolute", EINVAL);
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view c = path.substr(pos, slash - pos);
    if (c == "..")
      return make_error("archive name \"" + std::string(path.substr(0, 200)) + "\" contains \"..\"", EINVAL);
    if (c.size() > 255) return make_error("archive name has a component longer than 255 bytes", ENAMETOOLONG);
    if (!c.empty() && c != ".") out.emplace_back(c);
    pos = slash + 1;
  }
  return out;
}

Result<UniqueFd> open_dir_beneath(int root, const std::vector<std::string>& components,
                                  std::size_t count, bool create) {
  UniqueFd cur(::openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return errno_error("open destination directory");
  for (std::size_t i = 0; i < count; ++i) {
    const std::string& c = components[i];
    int fd = ::openat(cur.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      if (::mkdirat(cur.get(), c.c_str(), 0755) != 0 && errno != EEXIST)
        return errno_error("mkdir " + join(components, i + 1));
      fd = ::openat(cur.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      int err = errno;
      if (err == ELOOP || err == ENOTDIR)
        return make_error(join(components, i + 1) +
                              " is a symlink or not a directory; refusing to follow it",
                          ELOOP);
      return path_error("open " + join(components, i + 1), err);
    }
    cur.reset(fd);
  }
  return cur;
}

TreeWriter::TreeWriter(int root, TreeWriterOptions options) : root_(root), opt_(std::move(options)) {}

Result<std::vector<std::string>> TreeWriter::checked_components(std::string_view path) const {
  MOAT_ASSIGN_OR_RETURN(auto c, split_archive_path(path));
  if (c.empty()) return make_error("archive entry has an empty name", EINVAL);
  if (!opt_.required_top.empty() && c[0] != opt_.required_top)
    return make_error("archive entry \"" + std::string(path.substr(0, 200)) + "\" is outside \"" +
                          opt_.required_top + "\"",
                      EINVAL);
  return c;
}

Status TreeWriter::remove_non_dir(int parent, const std::string& leaf) {
  struct stat st {};
  if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return ok_status();
    return errno_error("stat " + leaf);
  }
  if (S_ISDIR(st.st_mode)) return make_error(leaf + " exists and is a directory", EISDIR);
  if (::unlinkat(parent, leaf.c_str(), 0) != 0) return errno_error("replace " + leaf);
  return ok_status();
}

Status TreeWriter::apply_meta(int fd, const char* leaf, const TreeEntry& e, bool nofollow) {
  int at_flags = nofollow ? AT_SYMLINK_NOFOLLOW : 0;
  if (opt_.chown && ::fchownat(fd, leaf, e.uid, e.gid, at_flags) != 0)
    return errno_error("chown " + e.path);
  if (e.type != proto::FileType::kSymlink && ::fchmodat(fd, leaf, e.mode & opt_.mode_mask, 0) != 0)
    return errno_error("chmod " + e.path);
  struct timespec ts[2] = {{e.mtime_sec, 0}, {e.mtime_sec, 0}};
  if (::utimensat(fd, leaf, ts, at_flags) != 0) return errno_error("set times of " + e.path);
  return ok_status();
}

Status TreeWriter::begin(const TreeEntry& e) {
  if (file_.valid()) return make_error("tree writer: previous file not complete", EINVAL);
  MOAT_ASSIGN_OR_RETURN(auto comps, checked_components(e.path));
  MOAT_ASSIGN_OR_RETURN(auto parent, open_dir_beneath(root_, comps, comps.size() - 1, true));
  const std::string& leaf = comps.back();
  ++entries_;
  current_ = e;

  if (e.hardlink) {
    MOAT_ASSIGN_OR_RETURN(auto target, checked_components(e.link));
    MOAT_ASSIGN_OR_RETURN(auto tparent, open_dir_beneath(root_, target, target.size() - 1, false));
    MOAT_TRY(remove_non_dir(parent.get(), leaf));
    // linkat without AT_SYMLINK_FOLLOW links a symlink itself, never its target.
    if (::linkat(tparent.get(), target.back().c_str(), parent.get(), leaf.c_str(), 0) != 0)
      return errno_error("hardlink " + e.path + " to " + e.link);
    return ok_status();
  }
  switch (e.type) {
    case proto::FileType::kDir: {
      if (::mkdirat(parent.get(), leaf.c_str(), 0700) != 0) {
        if (errno != EEXIST) return errno_error("mkdir " + e.path);
        struct stat st {};
        if (::fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
          return errno_error("stat " + e.path);
        if (!S_ISDIR(st.st_mode)) {
          MOAT_TRY(remove_non_dir(parent.get(), leaf));
          if (::mkdirat(parent.get(), leaf.c_str(), 0700) != 0) return errno_error("mkdir " + e.path);
        }
      }
      if (dirs_.size() >= opt_.max_dirs) return make_error("archive has too many directories", E2BIG);
      dirs_.push_back({comps, e.mode, e.uid, e.gid, e.mtime_sec});
      return ok_status();
    }
    case proto::FileType::kSymlink:
      MOAT_TRY(remove_non_dir(parent.get(), leaf));
      if (::symlinkat(e.link.c_str(), parent.get(), leaf.c_str()) != 0)
        return errno_error("symlink " + e.path);
      return apply_meta(parent.get(), leaf.c_str(), e, true);
    case proto::FileType::kFile: {
      MOAT_TRY(remove_non_dir(parent.get(), leaf));
      int fd = ::openat(parent.get(), leaf.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0) return errno_error("create " + e.path);
      file_.reset(fd);
      remaining_ = e.size;
      if (remaining_ == 0) return finish_file();
      return ok_status();
    }
    case proto::FileType::kFifo:
      MOAT_TRY(remove_non_dir(parent.get(), leaf));
      if (::mkfifoat(parent.get(), leaf.c_str(), 0600) != 0) return errno_error("mkfifo " + e.path);
      return apply_meta(parent.get(), leaf.c_str(), e, true);
    default:
      // Devices and sockets are not copied: they would need privilege on the
      // host and mean nothing outside the guest.
      --entries_;
      return ok_status();
  }
}

Status TreeWriter::write(std::string_view data) {
  if (!file_.valid()) return make_error("tree writer: data outside a file", EINVAL);
  if (data.size() > remaining_) return make_error("tree writer: more data than the entry's size", EINVAL);
  auto st = write_all(file_.get(), data);
  if (!st) return st.error().wrap(current_.path);
  remaining_ -= data.size();
  bytes_ += data.size();
  if (remaining_ == 0) return finish_file();
  return ok_status();
}

Status TreeWriter::finish_file() {
  UniqueFd fd = std::move(file_);
  const TreeEntry& e = current_;
  if (opt_.chown && ::fchown(fd.get(), e.uid, e.gid) != 0) return errno_error("chown " + e.path);
  if (::fchmod(fd.get(), e.mode & opt_.mode_mask) != 0) return errno_error("chmod " + e.path);
  struct timespec ts[2] = {{e.mtime_sec, 0}, {e.mtime_sec, 0}};
  if (::futimens(fd.get(), ts) != 0) return errno_error("set times of " + e.path);
  if (::close(fd.release()) != 0) return errno_error("close " + e.path);
  return ok_status();
}

Status TreeWriter::finish() {
  if (file_.valid()) return make_error("archive ended inside " + current_.path, EIO);
  // Deepest first, so setting a parent's mtime is the last change in it.
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    MOAT_ASSIGN_OR_RETURN(auto dir, open_dir_beneath(root_, it->components, it->components.size(), false));
    TreeEntry e;
    e.path = join(it->components, it->components.size());
    e.type = proto::FileType::kDir;
    e.mode = it->mode;
    e.uid = it->uid;
    e.gid = it->gid;
    e.mtime_sec = it->mtime_sec;
    MOAT_TRY(apply_meta(dir.get(), ".", e, false));
  }
  dirs_.clear();
  return ok_status();
}

}  // namespace moat::agent
