#include "jail/root_tree.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace moat::jail {
namespace {

// A read-only remount of a bind must repeat the flags of the mount it was
// made from that it cannot clear (the kernel refuses otherwise when the
// source mount is locked, as in a user namespace).
unsigned long locked_flags_of(const std::string& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return 0;
  unsigned long flags = 0;
  if (st.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return flags;
}

int fail(int err, const char* step, const char* path, const char** failed, const char** failed_path) {
  *failed = step;
  *failed_path = path;
  return err;
}

}  // namespace

bool RootTree::has(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return true;
  return false;
}

void RootTree::add_directory(const std::string& name) {
  if (!has(name)) entries_.push_back({EntryKind::kDirectory, name, "", 0});
}

Status RootTree::add_bind(const std::string& name, const std::string& source) {
  struct stat st {};
  if (::stat(source.c_str(), &st) != 0) return errno_error("the jail's " + name + " (" + source + ")");
  EntryKind kind = S_ISDIR(st.st_mode) ? EntryKind::kDirectory : EntryKind::kFile;
  // Never a set-uid program, and a device only where a device was asked for.
  unsigned long flags = locked_flags_of(source) | MS_NOSUID;
  if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) flags |= MS_NODEV;
  entries_.push_back({kind, name, source, flags});
  return ok_status();
}

Status RootTree::add_writable_bind(const std::string& name, const std::string& source) {
  struct stat st {};
  if (::stat(source.c_str(), &st) != 0) return errno_error("the jail's " + name + " (" + source + ")");
  if (!S_ISDIR(st.st_mode)) return make_error("the jail's " + name + " (" + source + "): not a directory", ENOTDIR);
  Entry e{EntryKind::kDirectory, name, source, locked_flags_of(source) | MS_NOSUID | MS_NODEV};
  e.writable = true;
  entries_.push_back(e);
  return ok_status();
}

void RootTree::add_proc(const std::string& name) { entries_.push_back({EntryKind::kProc, name, "", 0}); }

void RootTree::add_symlink(const std::string& name, const std::string& text) {
  entries_.push_back({EntryKind::kSymlink, name, text, 0});
}

Status RootTree::add_bind_at_same_path(const std::string& absolute) {
  if (absolute.size() < 2 || absolute[0] != '/') return make_error("not an absolute path: " + absolute, EINVAL);
  std::string name = absolute.substr(1);
  for (std::size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1))
    add_directory(name.substr(0, slash));
  return add_bind(name, absolute);
}

PreparedRoot RootTree::prepare() const {
  PreparedRoot p;
  p.mount_point = mount_point_;
  // Every string is in place before any pointer is taken: the vector never
  // grows after, and moving it keeps each string where it is.
  p.storage.reserve(entries_.size() * 2);
  for (const auto& e : entries_) {
    p.storage.push_back(mount_point_ + "/" + e.name);
    p.storage.push_back(e.source);
  }
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    PreparedRoot::Step s;
    s.kind = e.kind;
    s.target = p.storage[2 * i].c_str();
    s.source = e.source.empty() ? nullptr : p.storage[2 * i + 1].c_str();
    s.keep_flags = e.keep_flags;
    s.writable = e.writable;
    p.steps.push_back(s);
  }
  return p;
}

int enter_root(const PreparedRoot& root, const char** failed, const char** failed_path) {
  const char* top = root.mount_point.c_str();
  // Nothing mounted from here on may reach the host's namespace.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return fail(errno, "making mounts private", "/", failed, failed_path);
  // Small: it holds only directories, empty files and links to mount on.
  if (::mount("moat-jail", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k,nr_inodes=256") != 0)
    return fail(errno, "mounting the jail's tmpfs", top, failed, failed_path);
  for (const auto& s : root.steps) {
    if (s.kind == EntryKind::kSymlink) {
      if (::symlink(s.source, s.target) != 0) return fail(errno, "symlink", s.target, failed, failed_path);
      continue;
    }
    if (s.kind == EntryKind::kProc) {
      if (::mkdir(s.target, 0555) != 0 && errno != EEXIST) return fail(errno, "mkdir", s.target, failed, failed_path);
      if (::mount("proc", s.target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "subset=pid") != 0)
        return fail(errno, "mounting proc", s.target, failed, failed_path);
      continue;
    }
    if (s.kind == EntryKind::kDirectory) {
      if (::mkdir(s.target, 0755) != 0 && errno != EEXIST) return fail(errno, "mkdir", s.target, failed, failed_path);
    } else {
      int fd = ::open(s.target, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) return fail(errno, "creating a mount point", s.target, failed, failed_path);
      ::close(fd);
    }
    if (s.source == nullptr) continue;
    if (::mount(s.source, s.target, nullptr, MS_BIND | MS_REC, nullptr) != 0)
      return fail(errno, "bind mount", s.source, failed, failed_path);
    unsigned long access = s.writable ? 0 : MS_RDONLY;
    if (::mount(nullptr, s.target, nullptr, MS_REMOUNT | MS_BIND | access | s.keep_flags, nullptr) != 0)
      return fail(errno, s.writable ? "remount" : "read-only remount", s.target, failed, failed_path);
  }
  if (::chdir(top) != 0) return fail(errno, "chdir", top, failed, failed_path);
  // New and old root on the same directory: the old one is stacked beneath
  // and detached at once, with no directory left to name it.
  if (::syscall(SYS_pivot_root, ".", ".") == 0) {
    if (::umount2(".", MNT_DETACH) != 0) return fail(errno, "detaching the old root", "/", failed, failed_path);
  } else if (errno == EINVAL) {
    // Started inside a chroot (the current root is no mount's root), where
    // the kernel refuses pivot_root: chroot into the tree instead. The old
    // mounts stay in this namespace, out of reach of a process that holds
    // no capability (so no CAP_SYS_CHROOT to climb back out).
    if (::chroot(".") != 0) return fail(errno, "chroot", top, failed, failed_path);
  } else {
    return fail(errno, "pivot_root", top, failed, failed_path);
  }
  if (::chdir("/") != 0) return fail(errno, "chdir", "/", failed, failed_path);
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
    return fail(errno, "read-only remount", "/", failed, failed_path);
  return 0;
}

}  // namespace moat::jail
