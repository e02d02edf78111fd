#include "fs/erofs_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

namespace moat::fs {
namespace {

using image::ErofsDirent;
using image::ErofsInode;
using image::ErofsNid;

int err_of(const Error& e) { return e.code > 0 ? e.code : EIO; }

std::uint32_t dtype_of(std::uint8_t erofs_type) {
  switch (erofs_type) {
    case 1: return DT_REG;
    case 2: return DT_DIR;
    case 3: return DT_CHR;
    case 4: return DT_BLK;
    case 5: return DT_FIFO;
    case 6: return DT_SOCK;
    case 7: return DT_LNK;
    default: return DT_UNKNOWN;
  }
}

}  // namespace

std::uint64_t ErofsBackend::nodeid_of(ErofsNid nid) const {
  return nid == reader_.root_nid() ? FUSE_ROOT_ID : nid + 2;
}

ErofsNid ErofsBackend::nid_of(std::uint64_t nodeid) const {
  // Node ids 0 and 1 both mean the root here; 0 never comes from the kernel.
  return nodeid <= FUSE_ROOT_ID ? reader_.root_nid() : nodeid - 2;
}

Result<ErofsInode> ErofsBackend::inode(std::uint64_t nodeid) const {
  return reader_.inode(nid_of(nodeid));
}

void ErofsBackend::fill_attr(const ErofsInode& ino, fuse_attr& a) const {
  a = {};
  a.ino = ino.nid;
  a.size = ino.size;
  a.blocks = (ino.size + 511) / 512;
  a.atime = a.mtime = a.ctime = static_cast<std::uint64_t>(ino.mtime_sec);
  a.atimensec = a.mtimensec = a.ctimensec = ino.mtime_nsec;
  a.mode = ino.mode;
  a.nlink = ino.nlink;
  a.uid = ino.uid;
  a.gid = ino.gid;
  a.rdev = ino.rdev;  // both use the kernel's new_encode_dev() form
  a.blksize = reader_.superblock().block_size;
}

void ErofsBackend::fill_entry(const ErofsInode& ino, fuse_entry_out& out) const {
  out = {};
  out.nodeid = nodeid_of(ino.nid);
  out.generation = 1;
  out.entry_valid = out.attr_valid = options_.ttl;
  fill_attr(ino, out.attr);
}

int ErofsBackend::lookup(std::uint64_t parent, std::string_view name, fuse_entry_out& out) {
  auto dir = inode(parent);
  if (!dir.ok()) return err_of(dir.error());
  auto found = reader_.lookup(*dir, name);
  if (!found.ok()) return err_of(found.error());
  if (!found->has_value()) {
    // A negative entry the kernel caches as long as a positive one.
    out = {};
    out.entry_valid = options_.ttl;
    return 0;
  }
  auto child = reader_.inode(**found);
  if (!child.ok()) return err_of(child.error());
  fill_entry(*child, out);
  return 0;
}

int ErofsBackend::getattr(std::uint64_t nodeid, fuse_attr_out& out) {
  auto ino = inode(nodeid);
  if (!ino.ok()) return err_of(ino.error());
  out = {};
  out.attr_valid = options_.ttl;
  fill_attr(*ino, out.attr);
  return 0;
}

int ErofsBackend::readlink(std::uint64_t nodeid, std::string& target) {
  auto ino = inode(nodeid);
  if (!ino.ok()) return err_of(ino.error());
  auto t = reader_.readlink(*ino);
  if (!t.ok()) return err_of(t.error());
  target = std::move(*t);
  return 0;
}

int ErofsBackend::open(std::uint64_t nodeid, std::uint32_t flags, fuse_open_out& out) {
  auto ino = inode(nodeid);
  if (!ino.ok()) return err_of(ino.error());
  if (ino->is_dir()) return EISDIR;
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) return EROFS;
  out = {};
  out.open_flags = FOPEN_KEEP_CACHE;
  return 0;
}

int ErofsBackend::opendir(std::uint64_t nodeid, std::uint32_t, fuse_open_out& out) {
  auto ino = inode(nodeid);
  if (!ino.ok()) return err_of(ino.error());
  if (!ino->is_dir()) return ENOTDIR;
  out = {};
  out.open_flags = FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR;
  return 0;
}

int ErofsBackend::read(std::uint64_t nodeid, std::uint64_t, std::uint64_t offset,
                       std::vector<std::uint8_t>& out) {
  auto ino = inode(nodeid);
  if (!ino.ok()) return err_of(ino.error());
  if (ino->is_dir()) return EISDIR;
  if (!ino->is_regular()) return EINVAL;
  auto n = reader_.read(*ino, offset, out.data(), out.size());
  if (!n.ok()) return err_of(n.error());
  out.resize(*n);
  return 0;
}

int ErofsBackend::readdir(std::uint64_t nodeid, std::uint64_t, std::uint64_t offset,
                          DirBuffer& buf) {
  auto dir = inode(nodeid);
  if (!dir.ok()) return err_of(dir.error());
  if (!dir->is_dir()) return ENOTDIR;
  int err = 0;
  auto st = reader_.read_dir(*dir, [&](const ErofsDirent& e) {
    fuse_entry_out entry{};
    bool dot = e.name == "." || e.name == "..";
    if (buf.plus() && !dot) {
      // The kernel instantiates the child from these attributes; an entry
      // whose inode is unreadable is listed without them (node id 0).
      auto child = reader_.inode(e.nid);
      if (child.ok()) fill_entry(*child, entry);
    }
    return buf.add(e.name, e.nid, dtype_of(e.file_type), e.next_offset, entry);
  }, offset);
  if (!st.ok()) err = err_of(st.error());
  // Entries already packed are worth returning even if a later block is
  // corrupt; the next READDIR reports the error.
  if (err && buf.count() > 0) return 0;
  return err;
}

int ErofsBackend::statfs(std::uint64_t, fuse_kstatfs& out) {
  const auto& sb = reader_.superblock();
  out = {};
  out.bsize = out.frsize = sb.block_size;
  out.blocks = reader_.file_size() / sb.block_size;
  out.files = sb.inodes;
  out.namelen = 255;
  return 0;
}

int ErofsBackend::getxattr(std::uint64_t nodeid, std::string_view name, std::string& value) {
  auto ino = inode(nodeid);
  if (!ino.ok()) return err_of(ino.error());
  auto x = reader_.xattrs(*ino);
  if (!x.ok()) return err_of(x.error());
  for (auto& [n, v] : *x) {
    if (n == name) {
      value = std::move(v);
      return 0;
    }
  }
  return ENODATA;
}

int ErofsBackend::listxattr(std::uint64_t nodeid, std::string& names) {
  auto ino = inode(nodeid);
  if (!ino.ok()) return err_of(ino.error());
  auto x = reader_.xattrs(*ino);
  if (!x.ok()) return err_of(x.error());
  names.clear();
  for (const auto& [n, v] : *x) {
    names += n;
    names.push_back('\0');
  }
  return 0;
}

int ErofsBackend::lseek(std::uint64_t nodeid, std::uint64_t, std::uint64_t offset,
                        std::uint32_t whence, std::uint64_t& result) {
  auto ino = inode(nodeid);
  if (!ino.ok()) return err_of(ino.error());
  // EROFS files have no holes: data runs from 0 to the size.
  if (offset >= ino->size) return ENXIO;
  if (whence == SEEK_DATA) {
    result = offset;
  } else if (whence == SEEK_HOLE) {
    result = ino->size;
  } else {
    return EINVAL;
  }
  return 0;
}

}  // namespace moat::fs
