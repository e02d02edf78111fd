#include "tree/tree_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <utility>

#include "util/path_names.h"
#include "util/write_all.h"

namespace moat::agent {
namespace {

constexpr std::size_t kNone = SIZE_MAX;
// Bounds the undo log of a transactional writer. Only entries added directly
// to directories that existed before are logged: what lies inside a
// directory the writer created goes with that directory.
constexpr std::size_t kMaxCreated = 1 << 20;

Error path_error(const std::string& what, int err) { return errno_error(what, err); }

// A name for messages: a hostile one can be many kilobytes long.
std::string shown(std::string_view path) {
  if (path.size() <= 200) return std::string(path);
  return std::string(path.substr(0, 200)) + "...";
}

bool is_dir_at(int dir, const char* name) {
  struct stat st {};
  return ::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

// A directory stream opened beneath `dir` without following a symlink.
struct DirStream {
  DIR* d = nullptr;
  DirStream() = default;
  DirStream(int dir, const char* name, int flags) {
    int fd = ::openat(dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags);
    if (fd >= 0 && !(d = ::fdopendir(fd))) ::close(fd);
  }
  DirStream(DirStream&& o) noexcept : d(std::exchange(o.d, nullptr)) {}
  DirStream& operator=(DirStream&& o) noexcept {
    if (d) ::closedir(d);
    d = std::exchange(o.d, nullptr);
    return *this;
  }
  ~DirStream() {
    if (d) ::closedir(d);
  }
  int fd() const { return ::dirfd(d); }
};

// Deletes every non-directory in `dir` and returns the name of one
// subdirectory that is left ("" when none is).
Result<std::string> clear_files(DirStream& dir, const std::string& shown_path) {
  ::rewinddir(dir.d);
  std::string subdir;
  while (struct dirent* de = ::readdir(dir.d)) {
    std::string name = de->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = de->d_type == DT_DIR || (de->d_type == DT_UNKNOWN && is_dir_at(dir.fd(), name.c_str()));
    if (is_dir) {
      subdir = name;
    } else if (::unlinkat(dir.fd(), name.c_str(), 0) != 0 && errno != ENOENT) {
      return errno_error("remove " + shown_path + "/.../" + name);
    }
  }
  return subdir;
}

// Removes the directory `name` in `parent` with all it holds, following no
// symlink. One directory is open at a time (walking back up through ".."):
// a tree as deep as the depth limit would need more descriptors than a
// process may have. Only for trees the writer created itself, so their
// read-only directories may be made writable first.
Status remove_tree(int parent, const std::string& name, const std::string& shown_path) {
  std::vector<std::string> stack{name};
  DirStream cur(parent, name.c_str(), O_NOFOLLOW);
  if (!cur.d) return errno == ENOENT ? ok_status() : errno_error("open " + shown_path);
  while (true) {
    (void)::fchmod(cur.fd(), 0700);  // if this fails, the removals below say why
    MOAT_ASSIGN_OR_RETURN(auto sub, clear_files(cur, shown_path));
    if (!sub.empty()) {
      DirStream child(cur.fd(), sub.c_str(), O_NOFOLLOW);
      if (!child.d) return errno_error("open " + shown_path + "/.../" + sub);
      stack.push_back(std::move(sub));
      cur = std::move(child);
      continue;
    }
    std::string leaf = std::move(stack.back());
    stack.pop_back();
    if (stack.empty()) {
      cur = DirStream();
      if (::unlinkat(parent, leaf.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
        return errno_error("remove " + shown_path);
      return ok_status();
    }
    DirStream up(cur.fd(), "..", 0);
    if (!up.d) return errno_error("open " + shown_path + "/...");
    cur = std::move(up);
    if (::unlinkat(cur.fd(), leaf.c_str(), AT_REMOVEDIR) != 0)
      return errno_error("remove " + shown_path + "/.../" + leaf);
  }
}

std::string join(const std::vector<std::string>& c, std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count && i < c.size(); ++i) {
    if (i) out += '/';
    out += c[i];
  }
  return out;
}

}  // namespace

Result<std::vector<std::string>> split_archive_path(std::string_view path) {
  if (path.find('\0') != std::string_view::npos)
    return make_error("archive name contains a NUL byte", EINVAL);
  if (!path.empty() && path[0] == '/')
    return make_error("archive name \"" + std::string(path.substr(0, 200)) + "\" is absolute", EINVAL);
  // Unlike a guest path, an archive name may not use ".." at all: an entry
  // that climbs, even back into the tree, is refused rather than resolved.
  std::vector<std::string> out;
  MOAT_TRY(for_each_path_name(path, [&](std::string_view c) -> Status {
    if (c == "..")
      return make_error("archive name \"" + std::string(path.substr(0, 200)) + "\" contains \"..\"", EINVAL);
    if (c.size() > 255) return make_error("archive name has a component longer than 255 bytes", ENAMETOOLONG);
    out.emplace_back(c);
    return ok_status();
  }));
  return out;
}

Result<UniqueFd> open_dir_beneath(int root, const std::vector<std::string>& components,
                                  std::size_t count, bool create, std::size_t* first_created) {
  UniqueFd cur(::openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return errno_error("open destination directory");
  for (std::size_t i = 0; i < count; ++i) {
    const std::string& c = components[i];
    int fd = ::openat(cur.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      if (::mkdirat(cur.get(), c.c_str(), 0755) == 0) {
        if (first_created && *first_created == kNone) *first_created = i;
      } else if (errno != EEXIST) {
        return errno_error("mkdir " + join(components, i + 1));
      }
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
    return make_error("archive entry \"" + shown(path) + "\" is outside \"" + opt_.required_top + "\"", EINVAL);
  if (opt_.max_depth && c.size() - 1 > opt_.max_depth)
    return make_error("archive entry \"" + shown(path) + "\" lies " + std::to_string(c.size() - 1) +
                          " directories deep; the limit is " + std::to_string(opt_.max_depth),
                      ELOOP);
  std::size_t bytes = join(c, c.size()).size();
  if (opt_.max_path_bytes && bytes > opt_.max_path_bytes)
    return make_error("archive entry \"" + shown(path) + "\" has a name of " + std::to_string(bytes) +
                          " bytes; the limit is " + std::to_string(opt_.max_path_bytes),
                      ENAMETOOLONG);
  return c;
}

Result<UniqueFd> TreeWriter::open_parent(const std::vector<std::string>& comps) {
  std::size_t first = kNone;
  auto parent = open_dir_beneath(root_, comps, comps.size() - 1, true, &first);
  // Noted even when the walk failed further down: abort() must find it.
  if (first != kNone) MOAT_TRY(note_created(comps, first + 1));
  return parent;
}

bool TreeWriter::created_by_me(const std::vector<std::string>& comps, std::size_t count) const {
  if (created_paths_.empty()) return false;
  std::string p;
  for (std::size_t i = 0; i < count && i < comps.size(); ++i) {
    if (i) p += '/';
    p += comps[i];
    if (created_paths_.count(p)) return true;
  }
  return false;
}

Status TreeWriter::note_created(const std::vector<std::string>& comps, std::size_t count, std::string backup) {
  if (!opt_.transactional || created_by_me(comps, count)) return ok_status();
  std::vector<std::string> c(comps.begin(), comps.begin() + static_cast<std::ptrdiff_t>(count));
  created_paths_.insert(join(c, c.size()));
  created_.push_back({std::move(c), std::move(backup)});
  if (created_.size() > kMaxCreated)
    return make_error("archive adds more than " + std::to_string(kMaxCreated) +
                          " entries to directories that existed before",
                      E2BIG);
  return ok_status();
}

std::string TreeWriter::temp_name() {
  return ".moat-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(tmp_counter_++);
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

Status TreeWriter::make_place(int parent, const std::vector<std::string>& comps) {
  if (!opt_.transactional) return remove_non_dir(parent, comps.back());
  const std::string& leaf = comps.back();
  struct stat st {};
  if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT) return errno_error("stat " + shown(join(comps, comps.size())));
    return note_created(comps, comps.size());
  }
  if (S_ISDIR(st.st_mode)) return make_error(leaf + " exists and is a directory", EISDIR);
  if (created_by_me(comps, comps.size())) {
    if (::unlinkat(parent, leaf.c_str(), 0) != 0) return errno_error("replace " + leaf);
    return ok_status();
  }
  // It was there before: kept aside until finish(), put back by abort().
  for (int tries = 0; tries < 100; ++tries) {
    std::string backup = temp_name();
    struct stat taken {};
    if (::fstatat(parent, backup.c_str(), &taken, AT_SYMLINK_NOFOLLOW) == 0) continue;
    if (::renameat(parent, leaf.c_str(), parent, backup.c_str()) != 0) return errno_error("replace " + leaf);
    return note_created(comps, comps.size(), std::move(backup));
  }
  return make_error("replace " + leaf + ": no free temporary name", EEXIST);
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
  MOAT_ASSIGN_OR_RETURN(auto parent, open_parent(comps));
  const std::string& leaf = comps.back();
  ++entries_;
  current_ = e;

  if (e.hardlink) {
    MOAT_ASSIGN_OR_RETURN(auto target, checked_components(e.link));
    MOAT_ASSIGN_OR_RETURN(auto tparent, open_dir_beneath(root_, target, target.size() - 1, false));
    MOAT_TRY(make_place(parent.get(), comps));
    // linkat without AT_SYMLINK_FOLLOW links a symlink itself, never its target.
    if (::linkat(tparent.get(), target.back().c_str(), parent.get(), leaf.c_str(), 0) != 0)
      return errno_error("hardlink " + e.path + " to " + e.link);
    return ok_status();
  }
  switch (e.type) {
    case proto::FileType::kDir:
      return begin_dir(parent.get(), comps, e);
    case proto::FileType::kSymlink:
      MOAT_TRY(make_place(parent.get(), comps));
      if (::symlinkat(e.link.c_str(), parent.get(), leaf.c_str()) != 0)
        return errno_error("symlink " + e.path);
      return apply_meta(parent.get(), leaf.c_str(), e, true);
    case proto::FileType::kFile:
      return begin_file(std::move(parent), comps, e);
    case proto::FileType::kFifo:
      MOAT_TRY(make_place(parent.get(), comps));
      if (::mkfifoat(parent.get(), leaf.c_str(), 0600) != 0) return errno_error("mkfifo " + e.path);
      return apply_meta(parent.get(), leaf.c_str(), e, true);
    default:
      // Devices and sockets are not copied: they would need privilege on the
      // host and mean nothing outside the guest.
      --entries_;
      return ok_status();
  }
}

Status TreeWriter::begin_dir(int parent, const std::vector<std::string>& comps, const TreeEntry& e) {
  const std::string& leaf = comps.back();
  bool apply = true;
  if (::mkdirat(parent, leaf.c_str(), 0700) == 0) {
    MOAT_TRY(note_created(comps, comps.size()));
  } else {
    if (errno != EEXIST) return errno_error("mkdir " + e.path);
    struct stat st {};
    if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno_error("stat " + e.path);
    if (S_ISDIR(st.st_mode)) {
      // A directory the receiver already had is the receiver's: a sender
      // that is not trusted must not open up (chmod 777) or chown it.
      apply = !opt_.transactional || created_by_me(comps, comps.size());
    } else {
      MOAT_TRY(make_place(parent, comps));
      if (::mkdirat(parent, leaf.c_str(), 0700) != 0) return errno_error("mkdir " + e.path);
    }
  }
  if (!apply) return ok_status();
  if (dirs_.size() >= opt_.max_dirs) return make_error("archive has too many directories", E2BIG);
  dirs_.push_back({comps, e.mode, e.uid, e.gid, e.mtime_sec});
  return ok_status();
}

Status TreeWriter::begin_file(UniqueFd parent, const std::vector<std::string>& comps, const TreeEntry& e) {
  const std::string& leaf = comps.back();
  if (!opt_.transactional) {
    MOAT_TRY(remove_non_dir(parent.get(), leaf));
    int fd = ::openat(parent.get(), leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return errno_error("create " + e.path);
    file_.reset(fd);
  } else {
    // Refused before the data is read: a file cannot take a directory's place.
    if (is_dir_at(parent.get(), leaf.c_str())) return make_error(leaf + " exists and is a directory", EISDIR);
    for (int tries = 0; !file_.valid(); ++tries) {
      std::string tmp = temp_name();
      int fd = ::openat(parent.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0 && (errno != EEXIST || tries == 100)) return errno_error("create a temporary file for " + e.path);
      if (fd < 0) continue;
      file_.reset(fd);
      file_tmp_ = std::move(tmp);
    }
    file_dir_ = std::move(parent);
    file_comps_ = comps;
  }
  remaining_ = e.size;
  if (remaining_ == 0) return finish_file();
  return ok_status();
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
  if (!opt_.transactional) return ok_status();
  // Complete: only now does it take the place of what is there.
  MOAT_TRY(make_place(file_dir_.get(), file_comps_));
  if (::renameat(file_dir_.get(), file_tmp_.c_str(), file_dir_.get(), file_comps_.back().c_str()) != 0)
    return errno_error("rename " + e.path + " into place");
  file_tmp_.clear();
  file_dir_.reset();
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
  return drop_backups();
}

Status TreeWriter::drop_backups() {
  Status first;
  for (const auto& c : created_) {
    if (c.backup.empty()) continue;
    std::string path = shown(join(c.components, c.components.size()));
    auto parent = open_dir_beneath(root_, c.components, c.components.size() - 1, false);
    Status st = !parent ? Status(parent.error())
                : ::unlinkat(parent->get(), c.backup.c_str(), 0) != 0 ? Status(errno_error("unlink"))
                                                                       : ok_status();
    if (!st && first) first = st.error().wrap("remove the replaced " + path + " (left as " + c.backup + ")");
  }
  created_.clear();
  created_paths_.clear();
  return first;
}

Status TreeWriter::abort() {
  Status first;
  auto keep = [&first](Status st) {
    if (first && !st) first = std::move(st);
  };
  file_.reset();
  if (!file_tmp_.empty() && ::unlinkat(file_dir_.get(), file_tmp_.c_str(), 0) != 0 && errno != ENOENT)
    keep(errno_error("remove " + file_tmp_ + ", the unfinished " + current_.path));
  file_tmp_.clear();
  file_dir_.reset();
  // Newest first: an entry put back may have been replaced by a later one.
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) keep(undo(*it));
  created_.clear();
  created_paths_.clear();
  dirs_.clear();
  return first;
}

Status TreeWriter::undo(const Created& c) {
  std::string path = shown(join(c.components, c.components.size()));
  MOAT_ASSIGN_OR_RETURN(auto parent, open_dir_beneath(root_, c.components, c.components.size() - 1, false));
  const std::string& leaf = c.components.back();
  struct stat st {};
  if (::fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode)) {
      MOAT_TRY(remove_tree(parent.get(), leaf, path));
    } else if (::unlinkat(parent.get(), leaf.c_str(), 0) != 0 && errno != ENOENT) {
      return errno_error("remove " + path);
    }
  } else if (errno != ENOENT) {
    return errno_error("stat " + path);
  }
  if (!c.backup.empty() && ::renameat(parent.get(), c.backup.c_str(), parent.get(), leaf.c_str()) != 0)
    return errno_error("put back " + path + " (kept as " + c.backup + ")");
  return ok_status();
}

}  // namespace moat::agent
