#include "store/upper_patch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "store/ext4_editor.h"
#include "store/guest_path.h"
#include "store/tree_digest.h"
#include "util/unique_fd.h"

namespace moat::store {
namespace {

// overlayfs: an upper directory with this xattr hides the lower one below it.
constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";

// Where a walk through the merged (overlay) view stands: an upper directory
// and whether entries of the lower layer still show through below it.
struct Cursor {
  Ino dir = 0;
  std::string path = "/";
  bool lower_visible = true;
  // Made by this walk, so it held nothing when it was made: the callers
  // that add distinct names to it (a walk, one copied directory) need no
  // lookups, which are linear scans of the directory.
  bool made_here = false;
};

// Attributes a patch forces onto directories that already exist.
struct ForcedAttrs {
  std::optional<std::uint32_t> mode, uid, gid;
  bool any() const { return mode || uid || gid; }
};

bool is_dir(const std::optional<LowerEntry>& l) { return l && S_ISDIR(l->mode); }

// With --chmod a copied directory gets an execute bit for each read bit
// (0644 -> 0755, 0600 -> 0700), so a mode meant for files keeps the tree
// traversable.
std::uint32_t directory_mode(std::uint32_t mode) { return (mode & 07777) | ((mode & 0444) >> 2); }

std::string basename_of(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

class PatchWriter {
 public:
  PatchWriter(Ext4Editor& fs, const LowerLookup& lower, Ino upper_root)
      : fs_(fs), lower_(lower), now_(static_cast<std::int64_t>(::time(nullptr))) {
    root_.dir = upper_root;
  }

  Status apply(const UpperPatch& p) {
    switch (p.kind) {
      case UpperPatch::Kind::kMkdir: return apply_mkdir(p);
      case UpperPatch::Kind::kWrite: return apply_write(p);
      case UpperPatch::Kind::kRemove: return apply_remove(p);
      case UpperPatch::Kind::kCopy: return apply_copy(p);
    }
    return make_error("unknown patch kind", EINVAL);
  }

 private:
  Result<std::optional<LowerEntry>> lower_at(const Cursor& at, const std::string& path) {
    if (!at.lower_visible) return std::optional<LowerEntry>();
    auto l = lower_(path);
    if (!l) return l.error().wrap("looking up " + path + " in the lower layer");
    return l;
  }

  Result<bool> is_opaque(Ino dir) {
    MOAT_ASSIGN_OR_RETURN(auto v, fs_.get_xattr(dir, kOpaqueXattr));
    return v && *v == "y";
  }

  Ext4Attrs fresh_dir_attrs() const { return Ext4Attrs{0755, 0, 0, now_, 0}; }

  Result<Ino> new_dir(const Cursor& at, const std::string& name, const Ext4Attrs& attrs, bool opaque) {
    MOAT_ASSIGN_OR_RETURN(Ino ino, fs_.make_directory(at.dir, name, attrs));
    if (opaque) MOAT_TRY(fs_.set_xattr(ino, kOpaqueXattr, "y"));
    return ino;
  }

  // Makes `name` below `at` a directory of the merged view and steps into
  // it. An upper directory is reused; a lower directory gets an upper twin
  // with its mode, owner and mtime (the merged view shows the upper's);
  // anything else is replaced by a new directory (`fresh`), marked opaque
  // when it hides a lower entry, if `replace_non_dir` allows it.
  Result<Cursor> enter_dir(const Cursor& at, const std::string& name, Ext4Attrs fresh, const ForcedAttrs& force,
                           bool replace_non_dir) {
    const std::string path = guest_child(at.path, name);
    std::optional<Ext4Entry> upper;
    if (!at.made_here) {
      MOAT_ASSIGN_OR_RETURN(upper, fs_.lookup(at.dir, name));
    }
    MOAT_ASSIGN_OR_RETURN(auto lower, lower_at(at, path));
    if (force.mode) fresh.mode = *force.mode;
    if (force.uid) fresh.uid = *force.uid;
    if (force.gid) fresh.gid = *force.gid;
    if (upper && upper->type == EntryType::kDirectory) {
      MOAT_ASSIGN_OR_RETURN(bool opaque, is_opaque(upper->ino));
      if (force.any()) MOAT_TRY(fs_.update_attrs(upper->ino, force.mode, force.uid, force.gid, std::nullopt));
      return Cursor{upper->ino, path, at.lower_visible && !opaque && is_dir(lower)};
    }
    if (upper) {
      if (upper->type != EntryType::kWhiteout && !replace_non_dir) {
        return make_error(path + " is not a directory (an earlier patch made it)", ENOTDIR);
      }
      // A whiteout or an earlier patch's file gives way; what the lower has
      // stays hidden.
      MOAT_TRY(fs_.remove(at.dir, name));
      MOAT_ASSIGN_OR_RETURN(Ino ino, new_dir(at, name, fresh, lower.has_value()));
      return Cursor{ino, path, false, true};
    }
    if (is_dir(lower)) {
      Ext4Attrs twin{lower->mode & 07777, lower->uid, lower->gid, lower->mtime, 0};
      if (force.mode) twin.mode = *force.mode;
      if (force.uid) twin.uid = *force.uid;
      if (force.gid) twin.gid = *force.gid;
      MOAT_ASSIGN_OR_RETURN(Ino ino, new_dir(at, name, twin, false));
      return Cursor{ino, path, true, true};
    }
    if (lower && S_ISLNK(lower->mode)) {
      return make_error(path + " is a symbolic link in the image; patches do not follow symlinks (use the path it "
                               "points to)",
                        ENOTDIR);
    }
    if (lower && !replace_non_dir) return make_error(path + " is not a directory in the image", ENOTDIR);
    MOAT_ASSIGN_OR_RETURN(Ino ino, new_dir(at, name, fresh, lower.has_value()));
    return Cursor{ino, path, false, true};
  }

  // mkdir -p of the first `count` names, with fresh directories 0755 0:0.
  Result<Cursor> walk_parents(const std::vector<std::string>& names, std::size_t count) {
    Cursor at = root_;
    for (std::size_t i = 0; i < count; ++i) {
      MOAT_ASSIGN_OR_RETURN(at, enter_dir(at, names[i], fresh_dir_attrs(), ForcedAttrs{}, false));
    }
    return at;
  }

  // A non-directory replaces whatever the upper has at `name` (a non-
  // directory upper entry hides the lower one by itself: no opaque needed).
  Status clear(const Cursor& at, const std::string& name) {
    if (at.made_here) return ok_status();
    MOAT_ASSIGN_OR_RETURN(auto upper, fs_.lookup(at.dir, name));
    if (upper) MOAT_TRY(fs_.remove(at.dir, name));
    return ok_status();
  }

  Status apply_mkdir(const UpperPatch& p) {
    MOAT_ASSIGN_OR_RETURN(auto names, split_guest_path(p.guest_path));
    if (names.empty()) return make_error("cannot make the root directory", EINVAL);
    MOAT_ASSIGN_OR_RETURN(Cursor at, walk_parents(names, names.size() - 1));
    Ext4Attrs fresh{p.mode.value_or(0755), p.uid.value_or(0), p.gid.value_or(0), now_, 0};
    auto dir = enter_dir(at, names.back(), fresh, ForcedAttrs{p.mode, p.uid, p.gid}, true);
    if (!dir) return dir.error();
    return ok_status();
  }

  Status apply_write(const UpperPatch& p) {
    MOAT_ASSIGN_OR_RETURN(auto names, split_guest_path(p.guest_path));
    if (names.empty()) return make_error("cannot write the root directory", EINVAL);
    MOAT_ASSIGN_OR_RETURN(Cursor at, walk_parents(names, names.size() - 1));
    MOAT_TRY(clear(at, names.back()));
    Ext4Attrs attrs{p.mode.value_or(0644), p.uid.value_or(0), p.gid.value_or(0), now_, 0};
    auto ino = fs_.make_file_from_bytes(at.dir, names.back(), attrs, p.text);
    if (!ino) return ino.error();
    return ok_status();
  }

  // Whether `names` exists in the merged view, by lookups only.
  Result<bool> exists(const std::vector<std::string>& names) {
    std::optional<Ino> upper_dir = root_.dir;
    bool lower_visible = true;
    std::string path = "/";
    for (std::size_t i = 0; i < names.size(); ++i) {
      const bool last = i + 1 == names.size();
      path = guest_child(path, names[i]);
      std::optional<Ext4Entry> upper;
      if (upper_dir) {
        MOAT_ASSIGN_OR_RETURN(upper, fs_.lookup(*upper_dir, names[i]));
      }
      std::optional<LowerEntry> lower;
      if (lower_visible) {
        MOAT_ASSIGN_OR_RETURN(lower, lower_at(Cursor{0, path, true}, path));
      }
      if (upper) {
        if (upper->type == EntryType::kWhiteout) return false;
        if (last) return true;
        if (upper->type != EntryType::kDirectory) return make_error(path + " is not a directory", ENOTDIR);
        MOAT_ASSIGN_OR_RETURN(bool opaque, is_opaque(upper->ino));
        upper_dir = upper->ino;
        lower_visible = lower_visible && !opaque && is_dir(lower);
        continue;
      }
      if (!lower) return false;
      if (last) return true;
      if (S_ISLNK(lower->mode)) {
        return make_error(path + " is a symbolic link in the image; patches do not follow symlinks", ENOTDIR);
      }
      if (!S_ISDIR(lower->mode)) return make_error(path + " is not a directory", ENOTDIR);
      upper_dir.reset();
    }
    return true;
  }

  Status apply_remove(const UpperPatch& p) {
    MOAT_ASSIGN_OR_RETURN(auto names, split_guest_path(p.guest_path));
    if (names.empty()) return make_error("cannot remove the root directory", EINVAL);
    MOAT_ASSIGN_OR_RETURN(bool found, exists(names));
    if (!found) return make_error(join_guest_path(names) + ": no such file or directory", ENOENT);
    MOAT_ASSIGN_OR_RETURN(Cursor at, walk_parents(names, names.size() - 1));
    const std::string path = guest_child(at.path, names.back());
    MOAT_TRY(clear(at, names.back()));
    MOAT_ASSIGN_OR_RETURN(auto lower, lower_at(at, path));
    if (lower) {
      auto ino = fs_.make_whiteout(at.dir, names.back());
      if (!ino) return ino.error();
    }
    return ok_status();
  }

  Ext4Attrs copied_attrs(const UpperPatch& p, const struct stat& st, bool dir) const {
    std::uint32_t mode = st.st_mode & 07777;
    if (p.mode) mode = dir ? directory_mode(*p.mode) : *p.mode;
    return Ext4Attrs{mode, p.uid.value_or(0), p.gid.value_or(0), static_cast<std::int64_t>(st.st_mtim.tv_sec),
                     static_cast<std::uint32_t>(st.st_mtim.tv_nsec)};
  }

  ForcedAttrs forced_dir_attrs(const UpperPatch& p) const {
    return ForcedAttrs{p.mode ? std::optional<std::uint32_t>(directory_mode(*p.mode)) : std::nullopt, p.uid, p.gid};
  }

  Status copy_file(const Cursor& at, const std::string& name, int fd, const struct stat& st, const UpperPatch& p,
                   const std::string& host_path) {
    MOAT_TRY(clear(at, name));
    auto ino = fs_.make_file_from_fd(at.dir, name, copied_attrs(p, st, false), fd,
                                     static_cast<std::uint64_t>(st.st_size), host_path, at.made_here);
    if (!ino) return ino.error();
    return ok_status();
  }

  // Copies the entries of the open host directory `dirfd` into `at`, never
  // following a symlink found inside it.
  Status copy_children(const Cursor& at, int dirfd, const std::string& host_dir, const UpperPatch& p) {
    MOAT_ASSIGN_OR_RETURN(auto names, sorted_entries(dirfd, host_dir));
    for (const auto& name : names) {
      const std::string host = host_dir + "/" + name;
      if (guest_child(at.path, name).size() > kMaxGuestPathLength) {
        return make_error("guest path for " + host + " is longer than 4096 bytes", ENAMETOOLONG);
      }
      struct stat st {};
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno_error("stat " + host);
      if (S_ISDIR(st.st_mode)) {
        UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) return errno_error("open " + host);
        MOAT_ASSIGN_OR_RETURN(Cursor dir, enter_dir(at, name, copied_attrs(p, st, true), forced_dir_attrs(p), true));
        MOAT_TRY(copy_children(dir, sub.get(), host, p));
      } else if (S_ISREG(st.st_mode)) {
        UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC));
        if (!fd) return errno_error("open " + host);
        // The entry may have been swapped since the fstatat: trust the fd.
        if (::fstat(fd.get(), &st) != 0) return errno_error("stat " + host);
        if (!S_ISREG(st.st_mode)) return make_error(host + " changed type while being copied", EAGAIN);
        MOAT_TRY(copy_file(at, name, fd.get(), st, p, host));
      } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = ::readlinkat(dirfd, name.c_str(), target, sizeof(target));
        if (n < 0) return errno_error("readlink " + host);
        if (static_cast<std::size_t>(n) >= sizeof(target)) {
          return make_error("symlink " + host + " has a target longer than 4095 bytes", ENAMETOOLONG);
        }
        MOAT_TRY(clear(at, name));
        auto ino = fs_.make_symlink(at.dir, name, std::string(target, static_cast<std::size_t>(n)),
                                    copied_attrs(p, st, false));
        if (!ino) return ino.error();
      } else {
        return make_error(host + " is a special file (device, fifo or socket); only regular files, directories "
                                 "and symlinks are copied",
                          EINVAL);
      }
    }
    return ok_status();
  }

  Status apply_copy(const UpperPatch& p) {
    // The top-level source is the one path that may be a symlink: it is
    // what the user named.
    UniqueFd fd(::open(p.host_path.c_str(), O_RDONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
    if (!fd) return errno_error("open " + p.host_path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return errno_error("stat " + p.host_path);
    MOAT_ASSIGN_OR_RETURN(auto names, split_guest_path(p.guest_path));
    if (S_ISDIR(st.st_mode)) {
      // A directory's contents are merged into the target directory.
      if (names.empty()) return copy_children(root_, fd.get(), p.host_path, p);
      MOAT_ASSIGN_OR_RETURN(Cursor at, walk_parents(names, names.size() - 1));
      MOAT_ASSIGN_OR_RETURN(Cursor dir,
                            enter_dir(at, names.back(), copied_attrs(p, st, true), forced_dir_attrs(p), true));
      return copy_children(dir, fd.get(), p.host_path, p);
    }
    if (!S_ISREG(st.st_mode)) {
      return make_error(p.host_path + " is a special file (device, fifo or socket); only regular files, "
                                      "directories and symlinks are copied",
                        EINVAL);
    }
    if (names.empty() || p.guest_path.back() == '/') {
      std::string base = basename_of(p.host_path);
      if (base.empty() || base == "/" || base == "." || base == "..") {
        return make_error("cannot name a file after " + p.host_path, EINVAL);
      }
      names.push_back(base);
    }
    MOAT_ASSIGN_OR_RETURN(Cursor at, walk_parents(names, names.size() - 1));
    return copy_file(at, names.back(), fd.get(), st, p, p.host_path);
  }

  Ext4Editor& fs_;
  const LowerLookup& lower_;
  std::int64_t now_;
  Cursor root_;
};

std::string describe(const UpperPatch& p) {
  switch (p.kind) {
    case UpperPatch::Kind::kCopy: return "--copy " + p.host_path + ":" + p.guest_path;
    case UpperPatch::Kind::kMkdir: return "--mkdir " + p.guest_path;
    case UpperPatch::Kind::kWrite: return "--write " + p.guest_path;
    case UpperPatch::Kind::kRemove: return "--delete " + p.guest_path;
  }
  return "patch";
}

// Catches the errors a user is most likely to make before the disk is
// touched: a missing or unreadable source, or a special file.
Status check_sources(const std::vector<UpperPatch>& patches) {
  for (const auto& p : patches) {
    if (p.kind != UpperPatch::Kind::kCopy) continue;
    struct stat st {};
    if (::stat(p.host_path.c_str(), &st) != 0) return errno_error(describe(p) + ": " + p.host_path);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
      return make_error(describe(p) + ": " + p.host_path + " is a special file (device, fifo or socket)", EINVAL);
    }
    if (::access(p.host_path.c_str(), R_OK) != 0) return errno_error(describe(p) + ": " + p.host_path);
  }
  return ok_status();
}

}  // namespace

Status apply_upper_patches(const std::string& upper_ext4, const std::vector<UpperPatch>& patches,
                           const LowerLookup& lower) {
  if (patches.empty()) return ok_status();
  MOAT_TRY(check_sources(patches));
  MOAT_ASSIGN_OR_RETURN(Ext4Editor fs, Ext4Editor::open(upper_ext4));
  MOAT_ASSIGN_OR_RETURN(auto upper, fs.lookup(fs.root(), "upper"));
  if (!upper || upper->type != EntryType::kDirectory) {
    return make_error(upper_ext4 + " is not a moat upper disk (no /upper directory)", EINVAL);
  }
  PatchWriter writer(fs, lower, upper->ino);
  for (const auto& p : patches) {
    auto st = writer.apply(p);
    if (!st) {
      (void)fs.close();  // leave the disk consistent even though it is half patched
      return st.error().wrap(describe(p));
    }
  }
  return fs.close();
}

}  // namespace moat::store
