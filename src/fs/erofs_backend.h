// A read-only FsBackend over an EROFS image (image/erofs_reader.h).
//
// The image never changes while it is served, so there is no inode table to
// keep: a FUSE node id is derived from the EROFS nid (the root is
// FUSE_ROOT_ID, any other nid n is n + 2), FORGET is a no-op, and entries,
// attributes, directory listings and file pages can all be cached by the
// kernel for as long as it likes (long TTLs, FOPEN_KEEP_CACHE,
// FOPEN_CACHE_DIR). Hardlinks are one nid, so they share st_ino (= the nid,
// like the kernel's own EROFS driver) and st_nlink comes from the image.
//
// Node ids sent by the kernel are still checked: a nid must decode to a
// valid inode, and the reader bounds-checks everything else.
#pragma once

#include <cstdint>

#include "fs/fs_backend.h"
#include "image/erofs/erofs_reader.h"

namespace moat::fs {

struct ErofsBackendOptions {
  // Seconds the kernel may cache entries and attributes (negative lookups
  // too): the image is immutable, so a day is as correct as a second.
  std::uint64_t ttl = 86400;
  // Let the kernel skip OPEN/RELEASE (see FsBackend::stateless_open).
  bool stateless_open = true;
};

class ErofsBackend : public FsBackend {
 public:
  explicit ErofsBackend(image::ErofsReader reader, ErofsBackendOptions options = {})
      : reader_(std::move(reader)), options_(options) {}

  const image::ErofsReader& reader() const { return reader_; }
  std::uint64_t nodeid_of(image::ErofsNid nid) const;
  image::ErofsNid nid_of(std::uint64_t nodeid) const;

  // Nothing to check or remember per open: the mount is read-only and the
  // kernel enforces modes (default_permissions).
  bool stateless_open() const override { return options_.stateless_open; }
  bool read_only() const override { return true; }
  int lookup(std::uint64_t parent, std::string_view name, fuse_entry_out& out) override;
  int getattr(std::uint64_t nodeid, fuse_attr_out& out) override;
  int readlink(std::uint64_t nodeid, std::string& target) override;
  int open(std::uint64_t nodeid, std::uint32_t flags, fuse_open_out& out) override;
  int opendir(std::uint64_t nodeid, std::uint32_t flags, fuse_open_out& out) override;
  int read(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset,
           std::vector<std::uint8_t>& out) override;
  int readdir(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset, DirBuffer& buf) override;
  int statfs(std::uint64_t nodeid, fuse_kstatfs& out) override;
  int getxattr(std::uint64_t nodeid, std::string_view name, std::string& value) override;
  int listxattr(std::uint64_t nodeid, std::string& names) override;
  int lseek(std::uint64_t nodeid, std::uint64_t fh, std::uint64_t offset, std::uint32_t whence,
            std::uint64_t& result) override;

 private:
  Result<image::ErofsInode> inode(std::uint64_t nodeid) const;
  void fill_attr(const image::ErofsInode& ino, fuse_attr& attr) const;
  void fill_entry(const image::ErofsInode& ino, fuse_entry_out& out) const;

  image::ErofsReader reader_;
  ErofsBackendOptions options_;
};

}  // namespace moat::fs
