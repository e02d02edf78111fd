#include "fs/dir_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>

#include "fs/dir_handle_table.h"
#include "fs/dir_ownership.h"
#include "fs/dir_xattr_names.h"
#include "fs/node_table.h"
#include "fs/stat_xattr.h"
#include "fs/volume_quota.h"

namespace moat::fs {
namespace {

// Entries and attributes may change behind the guest's back (the host,
// another sandbox), so the kernel caches them briefly.
constexpr std::uint64_t kTtlSeconds = 1;
// Bounds the time one COPY_FILE_RANGE holds a worker; the kernel reports the
// short count and the caller continues.
constexpr std::uint64_t kMaxCopyChunk = 64u << 20;
constexpr std::size_t kXattrBuffer = 65536;

int last_errno() { return errno ? errno : EIO; }

std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// What a guest may put in an open's flags, plus what the server always adds.
// O_DIRECT is dropped (host alignment rules would break arbitrary guest
// writes), O_NOATIME too (only the owner may use it), O_CREAT/O_EXCL are the
// server's business.
int host_open_flags(std::uint32_t flags, bool writeback) {
  int keep = O_ACCMODE | O_APPEND | O_TRUNC | O_NONBLOCK | O_SYNC | O_DSYNC;
  int out = static_cast<int>(flags) & keep;
  if (writeback) {
    // The kernel reads pages back to merge partial writes, and computes
    // appends itself from its cached size.
    if ((out & O_ACCMODE) == O_WRONLY) out = (out & ~O_ACCMODE) | O_RDWR;
    out &= ~O_APPEND;
  }
  return out | O_CLOEXEC | O_NOCTTY;
}

// What the guest kernel is told about an open file. A write-only open
// bypasses the guest's page cache (FOPEN_DIRECT_IO): the guest then hands
// its user pages to the device instead of first copying them into cache
// pages, which under emulation is most of a large write's cost. Nothing
// is lost: a write-only file cannot be mapped, and readers' opens drop
// their cached pages anyway (no FOPEN_KEEP_CACHE). With a writeback cache
// the guest needs its pages, so then nothing changes.
std::uint32_t open_reply_flags(std::uint32_t guest_flags, bool writeback) {
  if (!writeback && (guest_flags & O_ACCMODE) == O_WRONLY) return FOPEN_DIRECT_IO;
  return 0;
}

bool opens_for_writing(std::uint32_t flags) {
  return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

class DirBackend : public FsBackend {
 public:
  DirBackend(UniqueFd root, const struct stat& st, bool xattrs, DirBackendOptions options,
             std::unique_ptr<VolumeQuota> quota)
      : nodes_(std::move(root), st, NodeTableOptions{options.max_open_nodes, options.max_nodes, options.file_handles}),
        handles_(options.max_open_handles),
        owner_(xattrs),
        options_(options),
        quota_(std::move(quota)) {}

  void init(const FuseSession& s) override { writeback_ = s.writeback_cache; }
  bool read_only() const override { return options_.read_only; }

  int lookup(std::uint64_t parent, std::string_view name, fuse_entry_out& out) override;
  void forget(std::uint64_t nodeid, std::uint64_t nlookup) override { nodes_.forget(nodeid, nlookup); }
  int getattr(std::uint64_t nodeid, fuse_attr_out& out) override;
  int readlink(std::uint64_t nodeid, std::string& target) override;
  int open(std::uint64_t nodeid, std::uint32_t flags, fuse_open_out& out) override;
  int opendir(std::uint64_t nodeid, std::uint32_t flags, fuse_open_out& out) override;
  void release(std::uint64_t nodeid, std::uint64_t fh) override;
  void releasedir(std::uint64_t nodeid, std::uint64_t fh) override { close_handle(nodeid, fh); }
  int read(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset,
           std::vector<std::uint8_t>& out) override;
  int readdir(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset, DirBuffer& buf) override;
  int statfs(std::uint64_t nodeid, fuse_kstatfs& out) override;
  int getxattr(std::uint64_t nodeid, std::string_view name, std::string& value) override;
  int listxattr(std::uint64_t nodeid, std::string& names) override;
  int access(std::uint64_t nodeid, std::uint32_t) override { return nodes_.contains(nodeid) ? 0 : ESTALE; }
  int lseek(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset, std::uint32_t whence,
            std::uint64_t& result) override;

  int flush(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t lock_owner) override;
  int fsync(std::uint64_t nodeid, std::uint64_t fh, bool datasync, bool dir) override;
  int syncfs(std::uint64_t nodeid) override;
  int setattr(const FuseCaller& who, std::uint64_t nodeid, const fuse_setattr_in& in,
              fuse_attr_out& out) override;
  int write(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset,
            std::span<const std::uint8_t> data, std::uint32_t write_flags,
            std::uint32_t& written) override;
  int create(const FuseCaller& who, std::uint64_t parent, std::string_view name,
             const fuse_create_in& in, fuse_entry_out& entry, fuse_open_out& open) override;
  int mknod(const FuseCaller& who, std::uint64_t parent, std::string_view name, std::uint32_t mode,
            std::uint32_t rdev, fuse_entry_out& out) override;
  int mkdir(const FuseCaller& who, std::uint64_t parent, std::string_view name, std::uint32_t mode,
            fuse_entry_out& out) override;
  int symlink(const FuseCaller& who, std::uint64_t parent, std::string_view name,
              std::string_view target, fuse_entry_out& out) override;
  int link(std::uint64_t nodeid, std::uint64_t newparent, std::string_view name,
           fuse_entry_out& out) override;
  int unlink(std::uint64_t parent, std::string_view name) override;
  int rmdir(std::uint64_t parent, std::string_view name) override;
  int rename(std::uint64_t parent, std::string_view name, std::uint64_t newparent,
             std::string_view newname, std::uint32_t flags) override;
  int setxattr(std::uint64_t nodeid, std::string_view name, std::span<const std::uint8_t> value,
               std::uint32_t flags) override;
  int removexattr(std::uint64_t nodeid, std::string_view name) override;
  int fallocate(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset, std::uint64_t length,
                std::uint32_t mode) override;
  int copy_file_range(std::uint64_t nodeid_in, const fuse_copy_file_range_in& in,
                      std::uint64_t& copied) override;

 private:
  // The node of a directory (ENOTDIR otherwise); `err` set on failure.
  DirNodeRef dir_node(std::uint64_t nodeid, int& err);
  int host_stat(const DirNode& node, struct stat& st) const;
  int attr_of(const DirNode& node, fuse_attr& a) const;
  // Adds `fd` (an O_PATH descriptor), found as `name` in the directory node
  // `parent`, to the node table and fills `out`.
  int enter(std::uint64_t parent, std::string_view name, UniqueFd fd, fuse_entry_out& out);
  int lookup_in(std::uint64_t parent_id, const DirNode& parent, std::string_view name, fuse_entry_out& out);
  // A new handle of `nodeid`; its node keeps its descriptor while it is open.
  std::uint64_t open_handle(std::uint64_t nodeid, UniqueFd fd);
  void close_handle(std::uint64_t nodeid, std::uint64_t fh);
  // Tells the node table where a renamed file now is.
  void record_move(const DirNode& dir, std::uint64_t dir_id, std::string_view name);
  // A descriptor for I/O on a handle, or a fresh one for the node if `fh`
  // names no handle of it (SETATTR/LSEEK/FSYNC without a handle).
  int io_fd(std::uint64_t nodeid, std::uint64_t fh, int flags, DirHandleRef& handle, UniqueFd& own);
  // With a size limit: cuts `length` so that a write of it at `offset` to
  // `fd` fits (ENOSPC if nothing does), and sets `size` to the file's size
  // before it. `append`: an O_APPEND descriptor writes at the end whatever
  // the offset (writes; not truncation). Call with the quota locked.
  int fit_write(int fd, std::uint64_t offset, std::uint64_t& length, std::uint64_t& size, bool append = true) const;
  // The quota's view of a file whose size went from `before` to what `fd` says now.
  void account_resize(int fd, std::uint64_t before);
  // Counts one more new entry (ENOSPC if it does not fit). With the quota locked.
  int fit_entry() const { return quota_->fits(VolumeQuota::kBlock) ? 0 : ENOSPC; }
  // `name` in `dirfd` loses a link (unlink, rename over it); `st` as before.
  void account_unlinked(const struct stat& st);

  NodeTable nodes_;
  DirHandleTable handles_;
  DirOwnership owner_;  // guest owners and modes of host files
  DirBackendOptions options_;
  bool writeback_ = false;
  std::unique_ptr<VolumeQuota> quota_;  // null: no size limit
};

using QuotaLock = std::unique_lock<std::mutex>;

int DirBackend::fit_write(int fd, std::uint64_t offset, std::uint64_t& length, std::uint64_t& size,
                          bool append) const {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return last_errno();
  size = static_cast<std::uint64_t>(st.st_size);
  int fl = append ? ::fcntl(fd, F_GETFL) : 0;
  if (fl >= 0 && (fl & O_APPEND)) offset = size;
  if (length == 0 || offset + length <= size) return 0;
  std::uint64_t have = VolumeQuota::file_cost(size);
  std::uint64_t need = VolumeQuota::file_cost(offset + length);
  if (need - have <= quota_->room()) return 0;
  // The file may grow to what it costs now plus the whole blocks left.
  std::uint64_t max_end = have + quota_->room() / VolumeQuota::kBlock * VolumeQuota::kBlock;
  if (max_end <= offset) return ENOSPC;
  length = max_end - offset;
  return 0;
}

void DirBackend::account_resize(int fd, std::uint64_t before) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return;
  quota_->adjust(VolumeQuota::file_cost(before), VolumeQuota::file_cost(static_cast<std::uint64_t>(st.st_size)));
}

void DirBackend::account_unlinked(const struct stat& st) {
  if (S_ISDIR(st.st_mode) || st.st_nlink > 1) {
    quota_->release(VolumeQuota::kBlock);  // a directory, or one name of several
  } else {
    quota_->last_link_removed(st);
  }
}

DirNodeRef DirBackend::dir_node(std::uint64_t nodeid, int& err) {
  auto node = nodes_.get(nodeid, err);
  if (!node) return nullptr;
  if (node->type != S_IFDIR) {
    err = ENOTDIR;
    return nullptr;
  }
  return node;
}

int DirBackend::host_stat(const DirNode& node, struct stat& st) const {
  if (::fstatat(node.fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return last_errno();
  return 0;
}

int DirBackend::attr_of(const DirNode& node, fuse_attr& a) const {
  struct stat st {};
  if (int err = host_stat(node, st)) return err;
  fill_guest_attr(st, owner_.recorded(node.fd.get(), st), a);
  return 0;
}

int DirBackend::enter(std::uint64_t parent, std::string_view name, UniqueFd fd, fuse_entry_out& out) {
  struct stat st {};
  if (::fstatat(fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return last_errno();
  auto g = owner_.recorded(fd.get(), st);
  int err = 0;
  std::uint64_t id = nodes_.add(parent, name, std::move(fd), st, err);
  if (id == 0) return err;
  out = {};
  out.nodeid = id;
  out.entry_valid = out.attr_valid = kTtlSeconds;
  fill_guest_attr(st, g, out.attr);
  return 0;
}

int DirBackend::lookup_in(std::uint64_t parent_id, const DirNode& parent, std::string_view name,
                          fuse_entry_out& out) {
  std::string n(name);
  // One component, never followed: a symlink is opened as itself.
  UniqueFd fd(::openat(parent.fd.get(), n.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return last_errno();
  return enter(parent_id, name, std::move(fd), out);
}

int DirBackend::lookup(std::uint64_t parent, std::string_view name, fuse_entry_out& out) {
  int err = 0;
  auto dir = dir_node(parent, err);
  if (!dir) return err;
  return lookup_in(parent, *dir, name, out);
}

std::uint64_t DirBackend::open_handle(std::uint64_t nodeid, UniqueFd fd) {
  std::uint64_t fh = handles_.add(std::move(fd), nodeid);
  if (fh != 0) nodes_.pin(nodeid);
  return fh;
}

void DirBackend::close_handle(std::uint64_t nodeid, std::uint64_t fh) {
  if (handles_.remove(fh, nodeid)) nodes_.unpin(nodeid);
}

void DirBackend::record_move(const DirNode& dir, std::uint64_t dir_id, std::string_view name) {
  UniqueFd fd(::openat(dir.fd.get(), std::string(name).c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (fd) nodes_.moved(dir_id, name, std::move(fd));
}

int DirBackend::getattr(std::uint64_t nodeid, fuse_attr_out& out) {
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  out = {};
  out.attr_valid = kTtlSeconds;
  return attr_of(*node, out.attr);
}

int DirBackend::readlink(std::uint64_t nodeid, std::string& target) {
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  if (node->type != S_IFLNK) return EINVAL;
  char buf[4096];
  ssize_t n = ::readlinkat(node->fd.get(), "", buf, sizeof buf);
  if (n < 0) return last_errno();
  if (static_cast<std::size_t>(n) >= sizeof buf) return ENAMETOOLONG;
  target.assign(buf, static_cast<std::size_t>(n));
  return 0;
}

int DirBackend::open(std::uint64_t nodeid, std::uint32_t flags, fuse_open_out& out) {
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  if (node->type == S_IFDIR) return EISDIR;
  // Only regular files are reopened through /proc (a symlink would be
  // followed there; special files are the guest kernel's business).
  if (node->type == S_IFLNK) return ELOOP;
  if (node->type != S_IFREG) return EACCES;
  if (options_.read_only && opens_for_writing(flags)) return EROFS;
  QuotaLock quota_lock;
  struct stat before {};
  if (quota_) {
    quota_lock = quota_->lock();
    if (int err = host_stat(*node, before)) return err;
    if (!quota_->may_reopen(before)) return ESTALE;
  }
  UniqueFd fd(::open(proc_path(node->fd.get()).c_str(), host_open_flags(flags, writeback_)));
  if (!fd) return last_errno();
  if (quota_) {
    account_resize(fd.get(), static_cast<std::uint64_t>(before.st_size));  // O_TRUNC
    quota_->opened(before);
  }
  std::uint64_t fh = open_handle(nodeid, std::move(fd));
  if (fh == 0) {
    if (quota_) quota_->closed(before);
    return ENFILE;
  }
  out = {};
  out.fh = fh;
  out.open_flags = open_reply_flags(flags, writeback_);
  return 0;
}

void DirBackend::release(std::uint64_t nodeid, std::uint64_t fh) {
  if (!quota_) return close_handle(nodeid, fh);
  auto h = handles_.get(fh, nodeid);
  if (!h) return;
  QuotaLock lock = quota_->lock();
  struct stat st {};
  bool known = ::fstat(h->fd.get(), &st) == 0;
  close_handle(nodeid, fh);
  h.reset();
  if (known && quota_->closed(st) && st.st_nlink == 0) quota_->release(VolumeQuota::cost(st));
}

int DirBackend::opendir(std::uint64_t nodeid, std::uint32_t, fuse_open_out& out) {
  int err = 0;
  auto dir = dir_node(nodeid, err);
  if (!dir) return err;
  UniqueFd fd(::openat(dir->fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return last_errno();
  std::uint64_t fh = open_handle(nodeid, std::move(fd));
  if (fh == 0) return ENFILE;
  out = {};
  out.fh = fh;
  return 0;
}

int DirBackend::read(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset,
                     std::vector<std::uint8_t>& out) {
  auto h = handles_.get(fh, nodeid);
  if (!h) return EBADF;
  if (offset > static_cast<std::uint64_t>(INT64_MAX)) return EINVAL;
  std::size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(h->fd.get(), out.data() + got, out.size() - got,
                        static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (got > 0) break;
      return last_errno();
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return 0;
}

int DirBackend::write(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset,
                      std::span<const std::uint8_t> data, std::uint32_t, std::uint32_t& written) {
  auto h = handles_.get(fh, nodeid);
  if (!h) return EBADF;
  if (offset > static_cast<std::uint64_t>(INT64_MAX)) return EFBIG;
  QuotaLock quota_lock;
  std::uint64_t size_before = 0;
  if (quota_) {
    quota_lock = quota_->lock();
    std::uint64_t length = data.size();
    if (int err = fit_write(h->fd.get(), offset, length, size_before)) return err;
    data = data.first(static_cast<std::size_t>(length));
  }
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(h->fd.get(), data.data() + done, data.size() - done,
                         static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (done > 0) break;
      return last_errno();
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  if (quota_) account_resize(h->fd.get(), size_before);
  written = static_cast<std::uint32_t>(done);
  return 0;
}

int DirBackend::readdir(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset,
                        DirBuffer& buf) {
  auto h = handles_.get(fh, nodeid);
  if (!h) return EBADF;
  int err = 0;
  auto dir = nodes_.get(nodeid, err);
  if (!dir) return err;
  if (offset > static_cast<std::uint64_t>(INT64_MAX)) return EINVAL;
  std::lock_guard lock(h->mu);
  // Offsets are the host filesystem's own d_off cookies, stable across
  // calls (and across opens) for the same directory.
  if (::lseek(h->fd.get(), static_cast<off_t>(offset), SEEK_SET) < 0) return last_errno();
  alignas(8) char raw[32768];
  for (;;) {
    ssize_t n = ::getdents64(h->fd.get(), raw, sizeof raw);
    if (n < 0) return buf.count() > 0 ? 0 : last_errno();
    if (n == 0) return 0;
    for (ssize_t pos = 0; pos < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(raw + pos);
      pos += d->d_reclen;
      std::string_view name(d->d_name);
      if (!buf.fits(name)) return 0;
      fuse_entry_out entry{};
      std::uint32_t type = d->d_type;
      bool dot = name == "." || name == "..";
      if (buf.plus() && !dot) {
        // An entry that vanished since getdents is listed without
        // attributes (node id 0); the kernel then looks it up if needed.
        if (lookup_in(nodeid, *dir, name, entry) == 0) {
          type = dtype_of_mode(entry.attr.mode);
        } else {
          entry = {};
        }
      } else if (!buf.plus()) {
        type = static_cast<std::uint32_t>(owner_.guest_dtype_at(h->fd.get(), name, d->d_type));
      }
      if (!buf.add(name, d->d_ino, type, static_cast<std::uint64_t>(d->d_off), entry)) {
        if (entry.nodeid) nodes_.forget(entry.nodeid, 1);
        return 0;
      }
    }
  }
}

int DirBackend::statfs(std::uint64_t nodeid, fuse_kstatfs& out) {
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) node = nodes_.get(FUSE_ROOT_ID, err);  // the root is always open
  struct statfs st {};
  if (::fstatfs(node->fd.get(), &st) != 0) return last_errno();
  out = {};
  out.blocks = st.f_blocks;
  out.bfree = st.f_bfree;
  out.bavail = st.f_bavail;
  out.files = st.f_files;
  out.ffree = st.f_ffree;
  out.bsize = static_cast<std::uint32_t>(st.f_bsize);
  out.frsize = static_cast<std::uint32_t>(st.f_frsize ? st.f_frsize : st.f_bsize);
  out.namelen = static_cast<std::uint32_t>(st.f_namelen);
  if (quota_) {
    // The guest's df shows the limit; free is what the limit leaves, or
    // the host's own free space if that is less.
    QuotaLock lock = quota_->lock();
    std::uint64_t frsize = out.frsize ? out.frsize : VolumeQuota::kBlock;
    std::uint64_t left = quota_->room() / frsize;
    out.blocks = quota_->limit() / frsize;
    out.bfree = std::min<std::uint64_t>(out.bfree, left);
    out.bavail = std::min<std::uint64_t>(out.bavail, left);
  }
  return 0;
}

int DirBackend::getxattr(std::uint64_t nodeid, std::string_view name, std::string& value) {
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  HostXattrName xattr = host_xattr_name(name);
  if (xattr.kind == XattrClass::kPrivate) return ENODATA;
  if (xattr.kind == XattrClass::kUnsupported) return EOPNOTSUPP;
  const std::string& host = xattr.name;
  if (!owner_.in_xattrs() || node->type == S_IFLNK) return ENODATA;
  value.resize(kXattrBuffer);
  ssize_t n = ::getxattr(proc_path(node->fd.get()).c_str(), host.c_str(), value.data(), value.size());
  if (n < 0) return errno == ERANGE ? E2BIG : last_errno();
  value.resize(static_cast<std::size_t>(n));
  return 0;
}

int DirBackend::listxattr(std::uint64_t nodeid, std::string& names) {
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  names.clear();
  if (!owner_.in_xattrs() || node->type == S_IFLNK) return 0;
  std::string raw(kXattrBuffer, '\0');
  ssize_t n = ::listxattr(proc_path(node->fd.get()).c_str(), raw.data(), raw.size());
  if (n < 0) return errno == ERANGE ? E2BIG : last_errno();
  for (std::size_t p = 0; p < static_cast<std::size_t>(n);) {
    std::string_view one(raw.data() + p);
    p += one.size() + 1;
    auto guest = guest_xattr_name(one);
    if (!guest) continue;
    names.append(*guest);
    names.push_back('\0');
  }
  return 0;
}

int DirBackend::io_fd(std::uint64_t nodeid, std::uint64_t fh, int flags, DirHandleRef& handle,
                      UniqueFd& own) {
  handle = handles_.get(fh, nodeid);
  if (handle) return 0;
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  if (node->type != S_IFREG && node->type != S_IFDIR) return EBADF;
  own.reset(::open(proc_path(node->fd.get()).c_str(), flags | O_CLOEXEC | O_NOCTTY));
  if (!own) return last_errno();
  return 0;
}

int DirBackend::lseek(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset,
                      std::uint32_t whence, std::uint64_t& result) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return EINVAL;
  if (offset > static_cast<std::uint64_t>(INT64_MAX)) return ENXIO;
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  if (node->type != S_IFREG) return EINVAL;  // a directory handle's offset belongs to READDIR
  DirHandleRef h;
  UniqueFd own;
  if (int e = io_fd(nodeid, fh, O_RDONLY, h, own)) return e;
  // File handles are only used with explicit offsets (pread, pwrite, ...),
  // so moving their offset here disturbs nothing.
  off_t r = ::lseek(h ? h->fd.get() : own.get(), static_cast<off_t>(offset), static_cast<int>(whence));
  if (r < 0) return last_errno();
  result = static_cast<std::uint64_t>(r);
  return 0;
}

int DirBackend::flush(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t) {
  auto h = handles_.get(fh, nodeid);
  if (!h) return EBADF;
  // close() of a duplicate reports write-back errors of network host
  // filesystems (NFS) at the guest's close(), where programs look for them.
  int dup = ::fcntl(h->fd.get(), F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return last_errno();
  if (::close(dup) != 0 && errno != EINTR) return last_errno();
  return 0;
}

int DirBackend::fsync(std::uint64_t nodeid, std::uint64_t fh, bool datasync, bool) {
  DirHandleRef h;
  UniqueFd own;
  if (int err = io_fd(nodeid, fh, O_RDONLY, h, own)) return err;
  int fd = h ? h->fd.get() : own.get();
  if ((datasync ? ::fdatasync(fd) : ::fsync(fd)) != 0) return last_errno();
  return 0;
}

int DirBackend::syncfs(std::uint64_t) {
  int err = 0;
  auto root = nodes_.get(FUSE_ROOT_ID, err);  // the root is always open
  UniqueFd fd(::openat(root->fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return last_errno();
  if (::syncfs(fd.get()) != 0) return last_errno();
  return 0;
}

int DirBackend::setattr(const FuseCaller&, std::uint64_t nodeid, const fuse_setattr_in& in,
                        fuse_attr_out& out) {
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  if (options_.read_only) return EROFS;
  const int pfd = node->fd.get();
  if (in.valid & FATTR_SIZE) {
    if (node->type == S_IFDIR) return EISDIR;
    if (node->type != S_IFREG) return EINVAL;
    if (in.size > static_cast<std::uint64_t>(INT64_MAX)) return EFBIG;
    DirHandleRef h = (in.valid & FATTR_FH) ? handles_.get(in.fh, nodeid) : nullptr;
    UniqueFd own;
    if (!h) {
      own.reset(::open(proc_path(pfd).c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY));
      if (!own) return last_errno();
    }
    int fd = h ? h->fd.get() : own.get();
    QuotaLock quota_lock;
    std::uint64_t size_before = 0;
    if (quota_) {
      quota_lock = quota_->lock();
      std::uint64_t length = in.size;
      if (int err = fit_write(fd, 0, length, size_before, /*append=*/false)) return err;
      if (length < in.size) return ENOSPC;  // a truncate is all or nothing
    }
    if (::ftruncate(fd, static_cast<off_t>(in.size)) != 0) return last_errno();
    if (quota_) account_resize(fd, size_before);
  }
  if (in.valid & (FATTR_ATIME | FATTR_MTIME)) {
    timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (in.valid & FATTR_ATIME) {
      ts[0] = (in.valid & FATTR_ATIME_NOW) ? timespec{0, UTIME_NOW}
                                           : timespec{static_cast<time_t>(in.atime), in.atimensec};
    }
    if (in.valid & FATTR_MTIME) {
      ts[1] = (in.valid & FATTR_MTIME_NOW) ? timespec{0, UTIME_NOW}
                                           : timespec{static_cast<time_t>(in.mtime), in.mtimensec};
    }
    if ((ts[0].tv_nsec != UTIME_OMIT && ts[0].tv_nsec != UTIME_NOW && ts[0].tv_nsec >= 1000000000) ||
        (ts[1].tv_nsec != UTIME_OMIT && ts[1].tv_nsec != UTIME_NOW && ts[1].tv_nsec >= 1000000000)) {
      return EINVAL;
    }
    if (::utimensat(pfd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return last_errno();
  }
  if (in.valid & (FATTR_MODE | FATTR_UID | FATTR_GID)) {
    // Symlinks carry no xattr; their owner and mode are the host's, and
    // changing them succeeds without effect (so `cp -a` and `tar` as root work).
    if (node->type == S_IFLNK) return getattr(nodeid, out);
    if (((in.valid & FATTR_UID) && in.uid == UINT32_MAX) || ((in.valid & FATTR_GID) && in.gid == UINT32_MAX)) {
      return EINVAL;  // (uid_t)-1 means "unchanged" to chown(2), never an owner
    }
    struct stat st {};
    if (int e = host_stat(*node, st)) return e;
    GuestStat g = owner_.effective(pfd, st);
    GuestStat before = g;
    if (in.valid & FATTR_MODE) g.mode = (g.mode & S_IFMT) | (in.mode & 07777);
    if (in.valid & FATTR_UID) g.uid = in.uid;
    if (in.valid & FATTR_GID) g.gid = in.gid;
    if (owner_.in_xattrs()) {
      if (int e = owner_.record(pfd, g)) return e;
    } else if (g.uid != before.uid || g.gid != before.gid) {
      return EPERM;  // nowhere to keep an owner the host cannot give
    }
    if ((in.valid & FATTR_MODE) && (node->type == S_IFREG || node->type == S_IFDIR)) {
      // The host mode follows the guest's rwx bits, kept usable by the server.
      if (::chmod(proc_path(pfd).c_str(), owner_.host_perm(g.mode, node->type == S_IFDIR)) != 0) {
        return last_errno();
      }
    }
  }
  return getattr(nodeid, out);
}

int DirBackend::create(const FuseCaller& who, std::uint64_t parent, std::string_view name,
                       const fuse_create_in& in, fuse_entry_out& entry, fuse_open_out& open) {
  int err = 0;
  auto dir = dir_node(parent, err);
  if (!dir) return err;
  if (options_.read_only) return EROFS;
  std::string n(name);
  std::uint32_t mode = S_IFREG | (in.mode & 07777);
  int flags = host_open_flags(in.flags, writeback_) | O_NOFOLLOW;
  bool created = true;
  QuotaLock quota_lock;
  struct stat existing_before {};
  if (quota_) {
    quota_lock = quota_->lock();
    bool exists = ::fstatat(dir->fd.get(), n.c_str(), &existing_before, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && fit_entry()) return ENOSPC;
  }
  UniqueFd fd(::openat(dir->fd.get(), n.c_str(), flags | O_CREAT | O_EXCL, owner_.host_perm(mode, false)));
  if (!fd && errno == EEXIST && !(in.flags & O_EXCL)) {
    // An existing name is opened only if it is a regular file: a host FIFO
    // opened for writing would block this worker until someone reads it.
    created = false;
    UniqueFd existing(::openat(dir->fd.get(), n.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!existing) return last_errno();
    struct stat st {};
    if (::fstat(existing.get(), &st) != 0) return last_errno();
    if (S_ISLNK(st.st_mode)) return ELOOP;
    if (S_ISDIR(st.st_mode)) return EISDIR;
    if (!S_ISREG(st.st_mode)) return EACCES;
    fd.reset(::open(proc_path(existing.get()).c_str(), flags & ~O_NOFOLLOW));
  }
  if (!fd) return last_errno();
  if (created && owner_.in_xattrs()) {
    if (int e = owner_.record_open(fd.get(), owner_.for_new_entry(who, dir->fd.get(), mode))) {
      ::unlinkat(dir->fd.get(), n.c_str(), 0);
      return e;
    }
  }
  struct stat st {};
  if (quota_) {
    // Charged as soon as it exists: the lines below may still fail, but the
    // file stays on the host.
    if (created) quota_->charge(VolumeQuota::kBlock);
    else account_resize(fd.get(), static_cast<std::uint64_t>(existing_before.st_size));  // O_TRUNC
    if (::fstat(fd.get(), &st) != 0) return last_errno();
  }
  UniqueFd path(::open(proc_path(fd.get()).c_str(), O_PATH | O_CLOEXEC));
  if (!path) return last_errno();
  if (int e = enter(parent, name, std::move(path), entry)) return e;
  std::uint64_t fh = open_handle(entry.nodeid, std::move(fd));
  if (fh == 0) {
    nodes_.forget(entry.nodeid, 1);
    return ENFILE;
  }
  if (quota_) quota_->opened(st);
  open = {};
  open.fh = fh;
  open.open_flags = open_reply_flags(in.flags, writeback_);
  return 0;
}

int DirBackend::mknod(const FuseCaller& who, std::uint64_t parent, std::string_view name,
                      std::uint32_t mode, std::uint32_t rdev, fuse_entry_out& out) {
  int err = 0;
  auto dir = dir_node(parent, err);
  if (!dir) return err;
  if (options_.read_only) return EROFS;
  std::uint32_t type = mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  bool special = type == S_IFCHR || type == S_IFBLK || type == S_IFIFO || type == S_IFSOCK;
  if (type != S_IFREG && !special) return EINVAL;
  // The host cannot hold device nodes for an unprivileged server, and must
  // not get ones a guest chose: every kind is an empty regular host file,
  // its guest type and device number in the xattr.
  if (special && !owner_.in_xattrs()) return EPERM;
  QuotaLock quota_lock;
  if (quota_) {
    quota_lock = quota_->lock();
    if (fit_entry()) return ENOSPC;
  }
  std::string n(name);
  GuestStat g = owner_.for_new_entry(who, dir->fd.get(), type | (mode & 07777));
  if (type == S_IFCHR || type == S_IFBLK) g.rdev = rdev;
  UniqueFd fd(::openat(dir->fd.get(), n.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       owner_.host_perm(g.mode, false)));
  if (!fd) return last_errno();
  if (quota_) quota_->charge(VolumeQuota::kBlock);
  if (owner_.in_xattrs()) {
    if (int e = owner_.record_open(fd.get(), g)) {
      ::unlinkat(dir->fd.get(), n.c_str(), 0);
      return e;
    }
  }
  UniqueFd path(::open(proc_path(fd.get()).c_str(), O_PATH | O_CLOEXEC));
  if (!path) return last_errno();
  return enter(parent, name, std::move(path), out);
}

int DirBackend::mkdir(const FuseCaller& who, std::uint64_t parent, std::string_view name,
                      std::uint32_t mode, fuse_entry_out& out) {
  int err = 0;
  auto dir = dir_node(parent, err);
  if (!dir) return err;
  if (options_.read_only) return EROFS;
  QuotaLock quota_lock;
  if (quota_) {
    quota_lock = quota_->lock();
    if (fit_entry()) return ENOSPC;
  }
  std::string n(name);
  GuestStat g = owner_.for_new_entry(who, dir->fd.get(), S_IFDIR | (mode & 07777));
  if (::mkdirat(dir->fd.get(), n.c_str(), owner_.host_perm(g.mode, true)) != 0) return last_errno();
  if (quota_) quota_->charge(VolumeQuota::kBlock);
  // O_NOFOLLOW | O_DIRECTORY: if something swapped the new directory for a
  // symlink meanwhile, this fails instead of following it.
  UniqueFd fd(::openat(dir->fd.get(), n.c_str(), O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return last_errno();
  if (owner_.in_xattrs()) {
    if (int e = owner_.record(fd.get(), g)) {
      ::unlinkat(dir->fd.get(), n.c_str(), AT_REMOVEDIR);
      return e;
    }
  }
  return enter(parent, name, std::move(fd), out);
}

int DirBackend::symlink(const FuseCaller&, std::uint64_t parent, std::string_view name,
                        std::string_view target, fuse_entry_out& out) {
  int err = 0;
  auto dir = dir_node(parent, err);
  if (!dir) return err;
  if (options_.read_only) return EROFS;
  QuotaLock quota_lock;
  if (quota_) {
    quota_lock = quota_->lock();
    if (fit_entry()) return ENOSPC;
  }
  std::string n(name), t(target);
  if (::symlinkat(t.c_str(), dir->fd.get(), n.c_str()) != 0) return last_errno();
  if (quota_) quota_->charge(VolumeQuota::kBlock);
  return lookup_in(parent, *dir, name, out);
}

int DirBackend::link(std::uint64_t nodeid, std::uint64_t newparent, std::string_view name,
                     fuse_entry_out& out) {
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  auto dir = dir_node(newparent, err);
  if (!dir) return err;
  if (options_.read_only) return EROFS;
  if (node->type == S_IFDIR) return EPERM;
  // Every further name counts as an entry: links cost no data, but each is a
  // directory entry on the host.
  QuotaLock quota_lock;
  if (quota_) {
    quota_lock = quota_->lock();
    if (fit_entry()) return ENOSPC;
  }
  std::string n(name);
  // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; without it, link through the
  // /proc name of the (non-symlink) inode.
  if (::linkat(node->fd.get(), "", dir->fd.get(), n.c_str(), AT_EMPTY_PATH) != 0) {
    if (errno != ENOENT || node->type == S_IFLNK) return last_errno();
    if (::linkat(AT_FDCWD, proc_path(node->fd.get()).c_str(), dir->fd.get(), n.c_str(),
                 AT_SYMLINK_FOLLOW) != 0) {
      return last_errno();
    }
  }
  if (quota_) quota_->charge(VolumeQuota::kBlock);
  UniqueFd fd(::fcntl(node->fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!fd) return last_errno();
  return enter(newparent, name, std::move(fd), out);
}

int DirBackend::unlink(std::uint64_t parent, std::string_view name) {
  int err = 0;
  auto dir = dir_node(parent, err);
  if (!dir) return err;
  if (options_.read_only) return EROFS;
  std::string n(name);
  QuotaLock quota_lock;
  struct stat st {};
  if (quota_) {
    quota_lock = quota_->lock();
    if (::fstatat(dir->fd.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return last_errno();
  }
  if (::unlinkat(dir->fd.get(), n.c_str(), 0) != 0) return last_errno();
  if (quota_) account_unlinked(st);
  return 0;
}

int DirBackend::rmdir(std::uint64_t parent, std::string_view name) {
  int err = 0;
  auto dir = dir_node(parent, err);
  if (!dir) return err;
  if (options_.read_only) return EROFS;
  QuotaLock quota_lock;
  if (quota_) quota_lock = quota_->lock();
  if (::unlinkat(dir->fd.get(), std::string(name).c_str(), AT_REMOVEDIR) != 0) return last_errno();
  if (quota_) quota_->release(VolumeQuota::kBlock);
  return 0;
}

int DirBackend::rename(std::uint64_t parent, std::string_view name, std::uint64_t newparent,
                       std::string_view newname, std::uint32_t flags) {
  int err = 0;
  auto from = dir_node(parent, err);
  if (!from) return err;
  auto to = dir_node(newparent, err);
  if (!to) return err;
  if (options_.read_only) return EROFS;
  // RENAME_WHITEOUT would make a host device node (overlayfs' whiteout).
  if (flags & ~static_cast<std::uint32_t>(RENAME_NOREPLACE | RENAME_EXCHANGE)) return EINVAL;
  // A rename over an existing entry removes that entry's name.
  QuotaLock quota_lock;
  struct stat source {}, target {};
  bool replaces = false;
  if (quota_ && !(flags & RENAME_EXCHANGE)) {
    quota_lock = quota_->lock();
    replaces = ::fstatat(to->fd.get(), std::string(newname).c_str(), &target, AT_SYMLINK_NOFOLLOW) == 0 &&
               ::fstatat(from->fd.get(), std::string(name).c_str(), &source, AT_SYMLINK_NOFOLLOW) == 0 &&
               (source.st_dev != target.st_dev || source.st_ino != target.st_ino);
  }
  if (::renameat2(from->fd.get(), std::string(name).c_str(), to->fd.get(),
                  std::string(newname).c_str(), flags) != 0) {
    return last_errno();
  }
  // A node that gave up its descriptor is reopened by name when it cannot
  // be by handle: it must be looked for where it now is.
  record_move(*to, newparent, newname);
  if (flags & RENAME_EXCHANGE) record_move(*from, parent, name);
  if (replaces) account_unlinked(target);
  return 0;
}

int DirBackend::setxattr(std::uint64_t nodeid, std::string_view name,
                         std::span<const std::uint8_t> value, std::uint32_t flags) {
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  if (options_.read_only) return EROFS;
  HostXattrName xattr = host_xattr_name(name);
  if (xattr.kind == XattrClass::kPrivate) return EPERM;
  if (xattr.kind == XattrClass::kUnsupported) return EOPNOTSUPP;
  const std::string& host = xattr.name;
  if (!owner_.in_xattrs()) return EOPNOTSUPP;
  if (node->type == S_IFLNK) return EPERM;  // no user xattrs on symlinks
  if (host.size() > 255) return ERANGE;
  int f = static_cast<int>(flags & (XATTR_CREATE | XATTR_REPLACE));
  if (::setxattr(proc_path(node->fd.get()).c_str(), host.c_str(), value.data(), value.size(), f) != 0) {
    return last_errno();
  }
  return 0;
}

int DirBackend::removexattr(std::uint64_t nodeid, std::string_view name) {
  int err = 0;
  auto node = nodes_.get(nodeid, err);
  if (!node) return err;
  if (options_.read_only) return EROFS;
  HostXattrName xattr = host_xattr_name(name);
  if (xattr.kind == XattrClass::kPrivate) return EPERM;
  if (xattr.kind == XattrClass::kUnsupported) return EOPNOTSUPP;
  const std::string& host = xattr.name;
  if (!owner_.in_xattrs() || node->type == S_IFLNK) return ENODATA;
  if (host.size() > 255) return ENODATA;
  if (::removexattr(proc_path(node->fd.get()).c_str(), host.c_str()) != 0) return last_errno();
  return 0;
}

int DirBackend::fallocate(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset,
                          std::uint64_t length, std::uint32_t mode) {
  auto h = handles_.get(fh, nodeid);
  if (!h) return EBADF;
  if (offset > static_cast<std::uint64_t>(INT64_MAX) || length > static_cast<std::uint64_t>(INT64_MAX)) {
    return EFBIG;
  }
  QuotaLock quota_lock;
  std::uint64_t size_before = 0;
  if (quota_) {
    quota_lock = quota_->lock();
    std::uint64_t grow_to = offset + length;  // the end the file may reach
    std::uint64_t fitted = length;
    struct stat st {};
    if (::fstat(h->fd.get(), &st) != 0) return last_errno();
    size_before = static_cast<std::uint64_t>(st.st_size);
    if (mode & FALLOC_FL_INSERT_RANGE) grow_to = size_before + length;
    bool keeps_size = mode & (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE);
    // Blocks reserved past the end would use the disk without a size to count.
    if ((mode & FALLOC_FL_KEEP_SIZE) && !(mode & FALLOC_FL_PUNCH_HOLE) && grow_to > size_before) return EOPNOTSUPP;
    if (!keeps_size) {
      fitted = grow_to;
      if (int err = fit_write(h->fd.get(), 0, fitted, size_before, /*append=*/false)) return err;
      if (fitted < grow_to) return ENOSPC;
    }
  }
  if (::fallocate(h->fd.get(), static_cast<int>(mode), static_cast<off_t>(offset),
                  static_cast<off_t>(length)) != 0) {
    return last_errno();
  }
  if (quota_) account_resize(h->fd.get(), size_before);
  return 0;
}

int DirBackend::copy_file_range(std::uint64_t nodeid_in, const fuse_copy_file_range_in& in,
                                std::uint64_t& copied) {
  auto src = handles_.get(in.fh_in, nodeid_in);
  auto dst = handles_.get(in.fh_out, in.nodeid_out);
  if (!src || !dst) return EBADF;
  if (in.flags != 0) return EINVAL;
  if (in.off_in > static_cast<std::uint64_t>(INT64_MAX) || in.off_out > static_cast<std::uint64_t>(INT64_MAX)) {
    return EINVAL;
  }
  loff_t off_in = static_cast<loff_t>(in.off_in);
  loff_t off_out = static_cast<loff_t>(in.off_out);
  std::uint64_t len = std::min(in.len, kMaxCopyChunk);
  QuotaLock quota_lock;
  std::uint64_t size_before = 0;
  if (quota_) {
    quota_lock = quota_->lock();
    if (int err = fit_write(dst->fd.get(), in.off_out, len, size_before)) return err;
  }
  ssize_t n = ::copy_file_range(src->fd.get(), &off_in, dst->fd.get(), &off_out, static_cast<std::size_t>(len), 0);
  if (quota_) account_resize(dst->fd.get(), size_before);
  if (n < 0) return last_errno();
  copied = static_cast<std::uint64_t>(n);
  return 0;
}

}  // namespace

Result<std::unique_ptr<FsBackend>> open_dir_backend(const std::string& root, DirBackendOptions options) {
  UniqueFd fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_error("open " + root);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("stat " + root);
  if (!S_ISDIR(st.st_mode)) return make_error(root + ": not a directory", ENOTDIR);
  // Regular files are reopened for I/O through /proc/self/fd.
  struct stat proc {};
  if (::stat(proc_path(fd.get()).c_str(), &proc) != 0 || proc.st_ino != st.st_ino) {
    return make_error("/proc/self/fd is not usable (is /proc mounted?)", ENOSYS);
  }
  // Whether the host filesystem keeps user xattrs (where guest owners live).
  bool xattrs = DirOwnership::probe(fd.get());
  std::unique_ptr<VolumeQuota> quota;
  if (options.size_limit) {
    MOAT_ASSIGN_OR_RETURN(auto usage, VolumeQuota::measure(root));
    quota = std::make_unique<VolumeQuota>(options.size_limit, usage);
  }
  return std::unique_ptr<FsBackend>(new DirBackend(std::move(fd), st, xattrs, options, std::move(quota)));
}

}  // namespace moat::fs
