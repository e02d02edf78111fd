// The filesystem a FUSE server exposes. The dispatcher (fuse_server.h)
// decodes requests and calls these methods from several worker threads at
// once, so implementations must be thread-safe; they should not hold a lock
// across I/O.
//
// Methods return 0 or a positive errno. Node ids are the backend's own, with
// FUSE_ROOT_ID (1) the root; the kernel hands back ids from lookup replies.
// Everything that changes the tree defaults to EROFS, so a read-only backend
// implements only the read side. Names reaching a backend were checked by the
// decoder: 1..255 bytes, no '/', never "." or "..".
#pragma once

#include <linux/fuse.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "fs/fuse_reply.h"

namespace moat::fs {

// What INIT negotiated, for backends that care.
struct FuseSession {
  std::uint32_t minor = 0;
  bool readdirplus = false;
  bool no_open = false;     // FUSE_NO_OPEN_SUPPORT: OPEN answered with ENOSYS
  bool no_opendir = false;  // FUSE_NO_OPENDIR_SUPPORT
  bool writeback_cache = false;  // FUSE_WRITEBACK_CACHE: the kernel may read write-only files
};

// Who asks, from the request header: the caller's fsuid/fsgid in the
// sender's namespace (for virtio-fs, the guest's), used as the owner of what
// it creates.
struct FuseCaller {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint32_t pid = 0;
};

class FsBackend {
 public:
  virtual ~FsBackend() = default;

  virtual void init(const FuseSession&) {}

  // True if opening needs no per-open state or checks from the backend (an
  // immutable image): the server then lets the kernel skip OPEN/OPENDIR and
  // RELEASE entirely (FUSE_NO_OPEN_SUPPORT), and the kernel caches pages
  // and directory listings as with FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR.
  virtual bool stateless_open() const { return false; }

  // Fills `out` (nodeid, generation, attributes and their timeouts). Each
  // successful lookup counts one reference the kernel later forgets.
  virtual int lookup(std::uint64_t parent, std::string_view name, fuse_entry_out& out) = 0;
  virtual void forget(std::uint64_t /*nodeid*/, std::uint64_t /*nlookup*/) {}
  virtual int getattr(std::uint64_t nodeid, fuse_attr_out& out) = 0;
  virtual int readlink(std::uint64_t nodeid, std::string& target) = 0;

  virtual int open(std::uint64_t nodeid, std::uint32_t flags, fuse_open_out& out) = 0;
  virtual int opendir(std::uint64_t nodeid, std::uint32_t flags, fuse_open_out& out) = 0;
  virtual void release(std::uint64_t /*nodeid*/, std::uint64_t /*fh*/) {}
  virtual void releasedir(std::uint64_t /*nodeid*/, std::uint64_t /*fh*/) {}

  // Reads up to out.size() bytes at `offset` into `out`, shrinking it to what
  // was read (empty at the end of the file).
  virtual int read(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset,
                   std::vector<std::uint8_t>& out) = 0;
  // Adds entries from `offset` (0 or an entry's `next`) until `buf` is full.
  // With buf.plus() each entry other than "." and ".." counts as a lookup.
  virtual int readdir(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset,
                      DirBuffer& buf) = 0;

  virtual int statfs(std::uint64_t nodeid, fuse_kstatfs& out) = 0;
  // The whole value; the dispatcher handles size probes and ERANGE.
  virtual int getxattr(std::uint64_t nodeid, std::string_view name, std::string& value) = 0;
  // Names, each NUL-terminated.
  virtual int listxattr(std::uint64_t nodeid, std::string& names) = 0;
  virtual int access(std::uint64_t /*nodeid*/, std::uint32_t /*mask*/) { return 0; }
  // SEEK_DATA / SEEK_HOLE; the kernel handles SEEK_SET/CUR/END itself.
  virtual int lseek(std::uint64_t /*nodeid*/, std::uint64_t /*fh*/, std::uint64_t /*offset*/,
                    std::uint32_t /*whence*/, std::uint64_t& /*result*/) {
    return ENOSYS;
  }

  // True if every change must be refused: the server then answers EROFS to
  // every tree-changing request and to opens for writing before the
  // backend sees them.
  virtual bool read_only() const { return false; }

  // FLUSH (on every close of a file). ENOSYS, the default, makes the kernel
  // stop sending it, which saves a round trip per close for backends with
  // nothing to flush.
  virtual int flush(std::uint64_t /*nodeid*/, std::uint64_t /*fh*/, std::uint64_t /*lock_owner*/) {
    return ENOSYS;
  }
  // FSYNC / FSYNCDIR (`dir`), SYNCFS. Nothing is dirty by default.
  virtual int fsync(std::uint64_t /*nodeid*/, std::uint64_t /*fh*/, bool /*datasync*/, bool /*dir*/) {
    return 0;
  }
  virtual int syncfs(std::uint64_t /*nodeid*/) { return 0; }

  // The tree-changing requests. Each fills its reply structures on success;
  // those that create an entry count one lookup of it, as LOOKUP does.
  // `in.valid` says which fields of SETATTR apply; `out` gets the new attributes.
  virtual int setattr(const FuseCaller&, std::uint64_t /*nodeid*/, const fuse_setattr_in&,
                      fuse_attr_out&) {
    return EROFS;
  }
  virtual int write(std::uint64_t /*nodeid*/, std::uint64_t /*fh*/, std::uint64_t /*offset*/,
                    std::span<const std::uint8_t> /*data*/, std::uint32_t /*write_flags*/,
                    std::uint32_t& /*written*/) {
    return EROFS;
  }
  // CREATE: creates (or, without O_EXCL, opens) and opens a regular file.
  virtual int create(const FuseCaller&, std::uint64_t /*parent*/, std::string_view /*name*/,
                     const fuse_create_in&, fuse_entry_out&, fuse_open_out&) {
    return EROFS;
  }
  virtual int mknod(const FuseCaller&, std::uint64_t /*parent*/, std::string_view /*name*/,
                    std::uint32_t /*mode*/, std::uint32_t /*rdev*/, fuse_entry_out&) {
    return EROFS;
  }
  virtual int mkdir(const FuseCaller&, std::uint64_t /*parent*/, std::string_view /*name*/,
                    std::uint32_t /*mode*/, fuse_entry_out&) {
    return EROFS;
  }
  virtual int symlink(const FuseCaller&, std::uint64_t /*parent*/, std::string_view /*name*/,
                      std::string_view /*target*/, fuse_entry_out&) {
    return EROFS;
  }
  // A new name `name` in `newparent` for `nodeid`.
  virtual int link(std::uint64_t /*nodeid*/, std::uint64_t /*newparent*/, std::string_view /*name*/,
                   fuse_entry_out&) {
    return EROFS;
  }
  virtual int unlink(std::uint64_t /*parent*/, std::string_view /*name*/) { return EROFS; }
  virtual int rmdir(std::uint64_t /*parent*/, std::string_view /*name*/) { return EROFS; }
  // RENAME (flags 0) and RENAME2 (RENAME_NOREPLACE, RENAME_EXCHANGE, ...).
  virtual int rename(std::uint64_t /*parent*/, std::string_view /*name*/, std::uint64_t /*newparent*/,
                     std::string_view /*newname*/, std::uint32_t /*flags*/) {
    return EROFS;
  }
  virtual int setxattr(std::uint64_t /*nodeid*/, std::string_view /*name*/,
                       std::span<const std::uint8_t> /*value*/, std::uint32_t /*flags*/) {
    return EROFS;
  }
  virtual int removexattr(std::uint64_t /*nodeid*/, std::string_view /*name*/) { return EROFS; }
  virtual int fallocate(std::uint64_t /*nodeid*/, std::uint64_t /*fh*/, std::uint64_t /*offset*/,
                        std::uint64_t /*length*/, std::uint32_t /*mode*/) {
    return EROFS;
  }
  // Copies up to in.len bytes; `copied` is how many were.
  virtual int copy_file_range(std::uint64_t /*nodeid_in*/, const fuse_copy_file_range_in&,
                              std::uint64_t& /*copied*/) {
    return EROFS;
  }
};

}  // namespace moat::fs
