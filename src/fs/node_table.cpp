#include "fs/node_table.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace moat::fs {
namespace {

// Bounds every walk up ".." or over recorded parents: deeper chains are
// answered ESTALE instead of looping without end.
constexpr int kMaxDepth = 4096;
// Bounds the ancestors reopened by name in one go (each is a stack frame).
constexpr int kMaxReopenDepth = 1024;

std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

std::string read_link(const std::string& path) {
  std::string buf(4096, '\0');
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
  if (n <= 0 || static_cast<std::size_t>(n) >= buf.size()) return {};
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

// A file handle of `fd` as bytes (handle type, then the handle), with the
// id of the mount it was taken on; empty if the filesystem gives none.
std::string file_handle_of(int fd, int& mount_id) {
  alignas(struct file_handle) unsigned char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  auto* fh = reinterpret_cast<struct file_handle*>(buf);
  fh->handle_bytes = MAX_HANDLE_SZ;
  if (::name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) != 0) return {};
  std::string out(sizeof(int) + fh->handle_bytes, '\0');
  std::memcpy(out.data(), &fh->handle_type, sizeof(int));
  std::memcpy(out.data() + sizeof(int), fh->f_handle, fh->handle_bytes);
  return out;
}

UniqueFd open_handle(int mount_fd, const std::string& handle) {
  if (handle.size() <= sizeof(int) || handle.size() - sizeof(int) > MAX_HANDLE_SZ) {
    errno = ESTALE;
    return UniqueFd();
  }
  alignas(struct file_handle) unsigned char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  auto* fh = reinterpret_cast<struct file_handle*>(buf);
  fh->handle_bytes = static_cast<unsigned>(handle.size() - sizeof(int));
  std::memcpy(&fh->handle_type, handle.data(), sizeof(int));
  std::memcpy(fh->f_handle, handle.data() + sizeof(int), fh->handle_bytes);
  // O_PATH: a symlink's handle opens the link itself, never its target.
  return UniqueFd(::open_by_handle_at(mount_fd, fh, O_PATH | O_NOFOLLOW | O_CLOEXEC));
}

}  // namespace

NodeTable::NodeTable(UniqueFd root, const struct stat& st, NodeTableOptions options) : options_(options) {
  if (options_.max_open < 1) options_.max_open = 1;
  if (options_.max_nodes < 1) options_.max_nodes = 1;
  root_fd_ = root.get();
  root_dev_ = st.st_dev;
  root_ino_ = st.st_ino;
  auto node = std::make_shared<DirNode>();
  node->fd = std::move(root);
  node->dev = st.st_dev;
  node->ino = st.st_ino;
  node->type = st.st_mode & S_IFMT;
  Entry e;
  e.id.dev = st.st_dev;
  e.id.ino = st.st_ino;
  e.id.type = S_IFDIR;
  e.open = std::move(node);
  e.lookups = 1;
  by_inode_[{st.st_dev, st.st_ino}] = FUSE_ROOT_ID;
  by_id_.emplace(FUSE_ROOT_ID, std::move(e));
  open_ = 1;
  if (options_.file_handles && !file_handle_of(root_fd_, root_mount_id_).empty()) {
    mount_fd_.reset(::open(proc_path(root_fd_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    handles_usable_ = static_cast<bool>(mount_fd_);
  }
}

bool NodeTable::identify(int fd, Identity& out) const {
  struct statx sx {};
  if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO | STATX_BTIME, &sx) != 0) {
    return false;
  }
  out = {};
  out.dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  out.ino = sx.stx_ino;
  out.type = sx.stx_mode & S_IFMT;
  if (sx.stx_mask & STATX_BTIME) {
    out.has_btime = true;
    out.btime_sec = sx.stx_btime.tv_sec;
    out.btime_nsec = sx.stx_btime.tv_nsec;
  }
  int mount_id = -1;
  out.handle = file_handle_of(fd, mount_id);
  out.handle_openable = !out.handle.empty() && mount_id == root_mount_id_;
  return true;
}

// An inode number may be reused once its file is deleted: the birth time and
// the file handle (which carries the inode's generation) tell the files apart
// where the filesystem reports them.
bool NodeTable::same_file(const Identity& known, const Identity& now) {
  if (known.dev != now.dev || known.ino != now.ino || known.type != now.type) return false;
  if (known.has_btime && now.has_btime &&
      (known.btime_sec != now.btime_sec || known.btime_nsec != now.btime_nsec)) {
    return false;
  }
  if (!known.handle.empty() && !now.handle.empty() && known.handle != now.handle) return false;
  return true;
}

DirNodeRef NodeTable::get(std::uint64_t nodeid, int& err) {
  Closed closed;  // declared first: closed after the mutex is released
  std::lock_guard lock(mu_);
  return open_locked(nodeid, 0, closed, err);
}

bool NodeTable::contains(std::uint64_t nodeid) const {
  std::lock_guard lock(mu_);
  return by_id_.count(nodeid) != 0;
}

DirNodeRef NodeTable::open_locked(std::uint64_t nodeid, int depth, Closed& closed, int& err) {
  auto it = by_id_.find(nodeid);
  if (it == by_id_.end()) {
    err = ESTALE;
    return nullptr;
  }
  Entry& e = it->second;
  if (e.open) {
    touch_locked(e);
    return e.open;
  }
  if (e.stale || depth > kMaxReopenDepth) {
    err = ESTALE;
    return nullptr;
  }
  UniqueFd fd;
  if (int r = reopen_locked(e, depth, closed, fd)) {
    err = r;
    return nullptr;
  }
  // Room is made only now: the parents opened above were in use until here.
  if (!make_room_locked(closed)) {
    err = ENFILE;
    return nullptr;
  }
  install_locked(nodeid, e, std::move(fd));
  return e.open;
}

int NodeTable::reopen_locked(Entry& e, int depth, Closed& closed, UniqueFd& fd) {
  if (handles_usable_ && e.id.handle_openable) {
    UniqueFd h = open_handle(mount_fd_.get(), e.id.handle);
    if (h) {
      Identity now;
      if (identify(h.get(), now) && now.dev == e.id.dev && now.ino == e.id.ino && now.type == e.id.type &&
          beneath_root_locked(h.get(), e, depth, closed)) {
        fd = std::move(h);
        return 0;
      }
      // Not beneath the root any more (or not where it can be shown to be):
      // only its recorded name, opened from inside, may still reach it.
    } else if (errno == EPERM || errno == EACCES) {
      handles_usable_ = false;  // no CAP_DAC_READ_SEARCH: names only from now on
    } else if (errno == ESTALE) {
      // The filesystem says the inode is gone; a reused inode number must
      // not bring the node back as another file.
      return ESTALE;
    }
  }
  if (e.parent == 0) return ESTALE;
  int err = 0;
  DirNodeRef parent = open_locked(e.parent, depth + 1, closed, err);
  if (!parent) return err == ENFILE ? ENFILE : ESTALE;
  UniqueFd w(::openat(parent->fd.get(), e.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!w) {
    int er = errno ? errno : EIO;
    return (er == ENOENT || er == ENOTDIR || er == ELOOP) ? ESTALE : er;
  }
  Identity now;
  if (!identify(w.get(), now) || !same_file(e.id, now)) return ESTALE;
  fd = std::move(w);
  return 0;
}

// Whether `fd`, opened by file handle, is a file beneath the root. A handle
// names an inode wherever it now is, so its place is checked from the root's
// side: the host (or another sandbox sharing a parent directory) may have
// moved it out.
bool NodeTable::beneath_root_locked(int fd, const Entry& e, int depth, Closed& closed) {
  if (e.id.type == S_IFDIR) return dir_beneath_root(fd);
  if (e.parent != 0) {
    int err = 0;
    DirNodeRef parent = open_locked(e.parent, depth + 1, closed, err);
    struct stat st {};
    if (parent && ::fstatat(parent->fd.get(), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_dev == e.id.dev && st.st_ino == e.id.ino) {
      return true;
    }
  }
  return found_from_root(fd, e.id);
}

// A directory has one parent: its ".." chain either meets the root or ends
// at the top of the filesystem (or of a mount namespace).
bool NodeTable::dir_beneath_root(int fd) const {
  UniqueFd cur;
  int at = fd;
  struct stat here {};
  if (::fstat(fd, &here) != 0) return false;
  for (int hops = 0; hops < kMaxDepth; ++hops) {
    UniqueFd up(::openat(at, "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!up) return false;
    struct stat st {};
    if (::fstat(up.get(), &st) != 0) return false;
    if (st.st_dev == root_dev_ && st.st_ino == root_ino_) return true;
    if (st.st_dev == here.st_dev && st.st_ino == here.st_ino) return false;  // ".." of the top is itself
    here = st;
    cur = std::move(up);
    at = cur.get();
  }
  return false;
}

// A file other than a directory may have several names, or be found by its
// handle without one the kernel remembers; its current /proc path is only a
// hint, walked from the root one component at a time without following
// symlinks, and it counts only if the walk ends at the same inode.
bool NodeTable::found_from_root(int fd, const Identity& id) const {
  std::string root = read_link(proc_path(root_fd_));
  std::string path = read_link(proc_path(fd));
  if (root.empty() || path.empty() || root[0] != '/') return false;
  if (root != "/") root += '/';
  if (path.size() <= root.size() || path.compare(0, root.size(), root) != 0) return false;
  std::string_view rest(path);
  rest.remove_prefix(root.size());
  UniqueFd cur;
  int at = root_fd_;
  for (int hops = 0; hops < kMaxDepth && !rest.empty(); ++hops) {
    std::size_t slash = rest.find('/');
    std::string part(rest.substr(0, slash));
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (part.empty() || part == "." || part == "..") return false;
    UniqueFd next(::openat(at, part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return false;
    cur = std::move(next);
    at = cur.get();
    if (rest.empty()) {
      struct stat st {};
      return ::fstat(at, &st) == 0 && st.st_dev == id.dev && st.st_ino == id.ino;
    }
  }
  return false;
}

void NodeTable::install_locked(std::uint64_t nodeid, Entry& e, UniqueFd fd) {
  auto node = std::make_shared<DirNode>();
  node->fd = std::move(fd);
  node->dev = e.id.dev;
  node->ino = e.id.ino;
  node->type = e.id.type;
  e.open = std::move(node);
  ++open_;
  if (e.pins == 0 && nodeid != FUSE_ROOT_ID) {
    lru_.push_front(nodeid);
    e.lru = lru_.begin();
    e.in_lru = true;
  }
}

void NodeTable::touch_locked(Entry& e) {
  if (e.in_lru) lru_.splice(lru_.begin(), lru_, e.lru);
}

// Closes descriptors, least recently used first, until one more fits. A node
// whose descriptor a caller still holds (use_count above the table's own
// reference: copies are only made under the mutex, so a stale count can only
// be too high) is in the middle of a request and is skipped.
bool NodeTable::make_room_locked(Closed& closed) {
  while (open_ >= options_.max_open) {
    bool evicted = false;
    for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
      Entry& e = by_id_.at(*it);
      if (e.open.use_count() > 1) continue;
      closed.push_back(std::move(e.open));
      lru_.erase(e.lru);
      e.in_lru = false;
      --open_;
      evicted = true;
      break;
    }
    if (!evicted) return false;
  }
  return true;
}

std::uint64_t NodeTable::add(std::uint64_t parent, std::string_view name, UniqueFd fd, const struct stat& st,
                             int& err) {
  Closed closed;  // declared first: closed after the mutex is released
  {
    // Most lookups are of open nodes (the kernel revalidates its entries
    // every second): those need no identity, their inode is pinned.
    std::lock_guard lock(mu_);
    if (auto it = by_inode_.find({st.st_dev, st.st_ino}); it != by_inode_.end()) {
      Entry& e = by_id_.at(it->second);
      if (e.open) {
        ++e.lookups;
        set_place_locked(it->second, e, parent, name, closed);
        return it->second;
      }
    }
  }
  Identity fresh;
  if (!identify(fd.get(), fresh)) {
    err = errno ? errno : EIO;
    return 0;
  }
  std::lock_guard lock(mu_);
  auto key = std::make_pair(fresh.dev, fresh.ino);
  if (auto it = by_inode_.find(key); it != by_inode_.end()) {
    std::uint64_t id = it->second;
    Entry& e = by_id_.at(id);
    // An open node pins its inode, so the number is certainly its file; a
    // closed one must prove it.
    if (e.open || same_file(e.id, fresh)) {
      ++e.lookups;
      set_place_locked(id, e, parent, name, closed);
      if (!e.open && make_room_locked(closed)) install_locked(id, e, std::move(fd));
      return id;
    }
    mark_stale_locked(id, e);
  }
  if (by_id_.size() >= options_.max_nodes) {
    err = ENFILE;
    return 0;
  }
  std::uint64_t id = next_id_++;
  Entry& e = by_id_[id];
  e.id = std::move(fresh);
  e.lookups = 1;
  by_inode_[key] = id;
  set_place_locked(id, e, parent, name, closed);
  // With every descriptor in use the node is still known, closed: it opens
  // on its next use, when a descriptor may be free again.
  if (make_room_locked(closed)) install_locked(id, e, std::move(fd));
  return id;
}

void NodeTable::moved(std::uint64_t parent, std::string_view name, UniqueFd fd) {
  Identity now;
  if (!identify(fd.get(), now)) return;
  Closed closed;
  std::lock_guard lock(mu_);
  auto it = by_inode_.find({now.dev, now.ino});
  if (it == by_inode_.end()) return;
  Entry& e = by_id_.at(it->second);
  if (e.open || same_file(e.id, now)) set_place_locked(it->second, e, parent, name, closed);
}

// Records where a node was last found, for reopening by name. A directory
// is never recorded beneath itself (the host may have moved things so that
// old records say so), which would make the walk loop and keep the entries
// alive through each other.
void NodeTable::set_place_locked(std::uint64_t nodeid, Entry& e, std::uint64_t parent, std::string_view name,
                                 Closed& closed) {
  if (nodeid == FUSE_ROOT_ID) return;
  if (e.parent == parent) {
    if (e.name != name) e.name.assign(name);
    return;
  }
  auto pit = by_id_.find(parent);
  if (pit == by_id_.end()) return;
  if (e.id.type == S_IFDIR && is_ancestor_locked(nodeid, parent)) return;
  ++pit->second.children;
  std::uint64_t old = e.parent;
  e.parent = parent;
  e.name.assign(name);
  if (old != 0) release_child_locked(old, closed);
}

bool NodeTable::is_ancestor_locked(std::uint64_t nodeid, std::uint64_t start) const {
  std::uint64_t at = start;
  for (int hops = 0; hops < kMaxDepth; ++hops) {
    if (at == nodeid) return true;
    if (at == 0) return false;
    auto it = by_id_.find(at);
    if (it == by_id_.end()) return false;
    at = it->second.parent;
  }
  return true;  // too deep to tell: treated as a loop
}

void NodeTable::release_child_locked(std::uint64_t parent, Closed& closed) {
  auto it = by_id_.find(parent);
  if (it == by_id_.end()) return;
  Entry& p = it->second;
  if (p.children > 0) --p.children;
  if (p.children == 0 && p.lookups == 0 && parent != FUSE_ROOT_ID) erase_locked(parent, closed);
}

void NodeTable::erase_locked(std::uint64_t nodeid, Closed& closed) {
  while (nodeid != FUSE_ROOT_ID) {
    auto it = by_id_.find(nodeid);
    if (it == by_id_.end()) return;
    Entry& e = it->second;
    if (e.open) {
      closed.push_back(std::move(e.open));
      --open_;
    }
    if (e.in_lru) lru_.erase(e.lru);
    if (auto k = by_inode_.find({e.id.dev, e.id.ino}); k != by_inode_.end() && k->second == nodeid) {
      by_inode_.erase(k);
    }
    std::uint64_t parent = e.parent;
    by_id_.erase(it);
    // The parent may have been kept only for this child.
    auto pit = by_id_.find(parent);
    if (pit == by_id_.end()) return;
    Entry& p = pit->second;
    if (p.children > 0) --p.children;
    if (p.children != 0 || p.lookups != 0) return;
    nodeid = parent;
  }
}

void NodeTable::mark_stale_locked(std::uint64_t nodeid, Entry& e) {
  e.stale = true;
  if (auto k = by_inode_.find({e.id.dev, e.id.ino}); k != by_inode_.end() && k->second == nodeid) {
    by_inode_.erase(k);
  }
}

void NodeTable::forget(std::uint64_t nodeid, std::uint64_t count) {
  if (nodeid == FUSE_ROOT_ID) return;
  Closed closed;
  std::lock_guard lock(mu_);
  auto it = by_id_.find(nodeid);
  if (it == by_id_.end()) return;
  Entry& e = it->second;
  e.lookups = e.lookups > count ? e.lookups - count : 0;
  if (e.lookups == 0 && e.children == 0) erase_locked(nodeid, closed);
}

void NodeTable::pin(std::uint64_t nodeid) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(nodeid);
  if (it == by_id_.end()) return;
  Entry& e = it->second;
  if (e.pins++ == 0 && e.in_lru) {
    lru_.erase(e.lru);
    e.in_lru = false;
  }
}

void NodeTable::unpin(std::uint64_t nodeid) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(nodeid);
  if (it == by_id_.end()) return;
  Entry& e = it->second;
  if (e.pins == 0 || --e.pins != 0) return;
  if (e.open && nodeid != FUSE_ROOT_ID && !e.in_lru) {
    lru_.push_front(nodeid);
    e.lru = lru_.begin();
    e.in_lru = true;
  }
}

std::size_t NodeTable::size() const {
  std::lock_guard lock(mu_);
  return by_id_.size();
}

std::size_t NodeTable::open_count() const {
  std::lock_guard lock(mu_);
  return open_;
}

}  // namespace moat::fs
