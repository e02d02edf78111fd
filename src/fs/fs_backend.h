// The filesystem a FUSE server exposes. The dispatcher (fuse_server.h)
// decodes requests and calls these methods from several worker threads at
// once, so implementations must be thread-safe; they should not hold a lock
// across I/O.
//
// Methods return 0 or a positive errno. Node ids are the backend's own, with
// FUSE_ROOT_ID (1) the root; the kernel hands back ids from lookup replies.
// Everything that changes the tree defaults to EROFS, so a read-only backend
// implements only the read side.
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

  // Every request that would change the tree (SETATTR, WRITE, CREATE, MKDIR,
  // UNLINK, RENAME, SETXATTR, ...). Read-only backends keep the default.
  virtual int modify(std::uint32_t /*opcode*/, std::uint64_t /*nodeid*/,
                     std::span<const std::uint8_t> /*body*/) {
    return EROFS;
  }
};

}  // namespace moat::fs
