#include "fs/fuse_server.h"

#include <fcntl.h>

#include <algorithm>
#include <string>

namespace moat::fs {
namespace {

// Flags this server asks for when the kernel offers them.
constexpr std::uint64_t kWantedFlags =
    FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES |
    FUSE_CACHE_SYMLINKS | FUSE_INIT_EXT;

constexpr std::uint32_t kMaxXattrSize = 65536;  // XATTR_SIZE_MAX / XATTR_LIST_MAX

bool is_change(std::uint32_t opcode) {
  switch (opcode) {
    case FUSE_SETATTR: case FUSE_SYMLINK: case FUSE_MKNOD: case FUSE_MKDIR:
    case FUSE_UNLINK: case FUSE_RMDIR: case FUSE_RENAME: case FUSE_LINK:
    case FUSE_WRITE: case FUSE_SETXATTR: case FUSE_REMOVEXATTR: case FUSE_CREATE:
    case FUSE_FALLOCATE: case FUSE_RENAME2: case FUSE_COPY_FILE_RANGE: case FUSE_TMPFILE:
      return true;
    default:
      return false;
  }
}

// Opening for anything but reading changes the file (O_TRUNC truncates).
bool opens_for_writing(std::uint32_t flags) {
  return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

FuseCaller caller_of(const fuse_in_header& h) { return FuseCaller{h.uid, h.gid, h.pid}; }

}  // namespace

void FuseServer::handle(std::span<const std::uint8_t> request, FuseReply& reply) {
  auto header = decode_header(request);
  if (!header.ok()) {
    // Without a trustworthy header there is no request to answer.
    reply.reset(0);
    reply.none();
    return;
  }
  reply.reset(header->unique);
  auto req = decode_request(request);
  if (!req.ok()) {
    reply.error(req.error().code ? req.error().code : EINVAL);
    return;
  }
  if (req->opcode() == FUSE_INIT) {
    init(*req, reply);
    return;
  }
  if (!initialized()) {
    reply.error(EIO);
    return;
  }
  dispatch(*req, reply);
}

void FuseServer::init(const FuseRequest& req, FuseReply& reply) {
  const auto& in = std::get<fuse_init_in>(req.args);
  fuse_init_out out{};
  out.major = kFuseMajor;
  out.minor = kFuseMinor;
  if (in.major > kFuseMajor) {
    // A newer major: answer with ours only and the kernel asks again.
    reply.set(out);
    return;
  }
  if (in.major < kFuseMajor || in.minor < kFuseMinMinor || initialized()) {
    reply.error(EPROTO);
    return;
  }
  std::uint64_t offered = in.flags;
  if (in.flags & FUSE_INIT_EXT) offered |= static_cast<std::uint64_t>(in.flags2) << 32;
  std::uint64_t wanted = kWantedFlags;
  if (options_.readdirplus) wanted |= FUSE_DO_READDIRPLUS;
  if (options_.writeback_cache && !backend_.read_only()) wanted |= FUSE_WRITEBACK_CACHE;
  if (backend_.stateless_open()) wanted |= FUSE_NO_OPEN_SUPPORT | FUSE_NO_OPENDIR_SUPPORT;
  std::uint64_t flags = offered & wanted;
  out.minor = std::min(in.minor, kFuseMinor);
  out.flags = static_cast<std::uint32_t>(flags);
  out.flags2 = static_cast<std::uint32_t>(flags >> 32);
  out.max_readahead = std::min(in.max_readahead, kFuseMaxRead);
  out.max_background = static_cast<std::uint16_t>(options_.max_background);
  out.congestion_threshold = static_cast<std::uint16_t>(options_.max_background * 3 / 4);
  out.max_write = kFuseMaxWrite;
  out.time_gran = 1;
  out.max_pages = static_cast<std::uint16_t>(kFuseMaxRead / 4096);
  session_.minor = out.minor;
  session_.readdirplus = flags & FUSE_DO_READDIRPLUS;
  session_.no_open = flags & FUSE_NO_OPEN_SUPPORT;
  session_.no_opendir = flags & FUSE_NO_OPENDIR_SUPPORT;
  session_.writeback_cache = flags & FUSE_WRITEBACK_CACHE;
  backend_.init(session_);
  initialized_.store(true, std::memory_order_release);
  reply.set(out);
}

void FuseServer::xattr_reply(const FuseGetxattr& x, int err, const std::string& value,
                             FuseReply& reply) {
  if (err) return reply.error(err);
  if (value.size() > kMaxXattrSize) return reply.error(E2BIG);
  if (x.in.size == 0) {
    fuse_getxattr_out out{};
    out.size = static_cast<std::uint32_t>(value.size());
    return reply.set(out);
  }
  if (value.size() > x.in.size) return reply.error(ERANGE);
  reply.set_bytes(value);
}

void FuseServer::dispatch(const FuseRequest& req, FuseReply& reply) {
  const std::uint64_t node = req.nodeid();
  int err = 0;
  switch (req.opcode()) {
    case FUSE_LOOKUP: {
      fuse_entry_out out{};
      err = backend_.lookup(node, req.name, out);
      if (!err) reply.set(out);
      break;
    }
    case FUSE_FORGET:
      backend_.forget(node, std::get<fuse_forget_in>(req.args).nlookup);
      return reply.none();
    case FUSE_BATCH_FORGET:
      for (const auto& one : std::get<FuseBatchForget>(req.args).items) {
        backend_.forget(one.nodeid, one.nlookup);
      }
      return reply.none();
    case FUSE_GETATTR: {
      fuse_attr_out out{};
      err = backend_.getattr(node, out);
      if (!err) reply.set(out);
      break;
    }
    case FUSE_READLINK: {
      std::string target;
      err = backend_.readlink(node, target);
      if (!err) reply.set_bytes(target);
      break;
    }
    case FUSE_OPEN:
    case FUSE_OPENDIR: {
      if (req.opcode() == FUSE_OPEN && backend_.read_only() &&
          opens_for_writing(std::get<fuse_open_in>(req.args).flags)) {
        err = EROFS;
        break;
      }
      // ENOSYS here, once negotiated, makes the kernel stop sending opens.
      bool skip = req.opcode() == FUSE_OPEN ? session_.no_open : session_.no_opendir;
      if (skip) {
        err = ENOSYS;
        break;
      }
      const auto& in = std::get<fuse_open_in>(req.args);
      fuse_open_out out{};
      err = req.opcode() == FUSE_OPEN ? backend_.open(node, in.flags, out)
                                      : backend_.opendir(node, in.flags, out);
      if (!err) reply.set(out);
      break;
    }
    case FUSE_READ: {
      const auto& in = std::get<fuse_read_in>(req.args);
      reply.payload().resize(std::min(in.size, kFuseMaxRead));
      err = backend_.read(node, in.fh, in.offset, reply.payload());
      break;
    }
    case FUSE_READDIR:
    case FUSE_READDIRPLUS: {
      const auto& in = std::get<fuse_read_in>(req.args);
      DirBuffer buf(reply.payload(), std::min(in.size, kFuseMaxRead),
                    req.opcode() == FUSE_READDIRPLUS);
      err = backend_.readdir(node, in.fh, in.offset, buf);
      break;
    }
    case FUSE_RELEASE:
      backend_.release(node, std::get<fuse_release_in>(req.args).fh);
      break;
    case FUSE_RELEASEDIR:
      backend_.releasedir(node, std::get<fuse_release_in>(req.args).fh);
      break;
    case FUSE_STATFS: {
      fuse_statfs_out out{};
      err = backend_.statfs(node, out.st);
      if (!err) reply.set(out);
      break;
    }
    case FUSE_GETXATTR: {
      const auto& x = std::get<FuseGetxattr>(req.args);
      std::string value;
      err = backend_.getxattr(node, x.name, value);
      return xattr_reply(x, err, value, reply);
    }
    case FUSE_LISTXATTR: {
      const auto& x = std::get<FuseGetxattr>(req.args);
      std::string names;
      err = backend_.listxattr(node, names);
      return xattr_reply(x, err, names, reply);
    }
    case FUSE_ACCESS:
      err = backend_.access(node, std::get<fuse_access_in>(req.args).mask);
      break;
    case FUSE_LSEEK: {
      const auto& in = std::get<fuse_lseek_in>(req.args);
      fuse_lseek_out out{};
      err = backend_.lseek(node, in.fh, in.offset, in.whence, out.offset);
      if (!err) reply.set(out);
      break;
    }
    case FUSE_INTERRUPT:
    case FUSE_NOTIFY_REPLY:
      // Requests finish quickly here; an interrupt is simply not answered.
      return reply.none();
    case FUSE_FLUSH: {
      // A backend's ENOSYS tells the kernel never to send FLUSH again.
      const auto& in = std::get<fuse_flush_in>(req.args);
      err = backend_.flush(node, in.fh, in.lock_owner);
      break;
    }
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR: {
      const auto& in = std::get<fuse_fsync_in>(req.args);
      err = backend_.fsync(node, in.fh, in.fsync_flags & FUSE_FSYNC_FDATASYNC,
                           req.opcode() == FUSE_FSYNCDIR);
      break;
    }
    case FUSE_SYNCFS:
      err = backend_.syncfs(node);
      break;
    case FUSE_DESTROY:
      destroyed_.store(true, std::memory_order_release);
      break;
    default:
      if (is_change(req.opcode())) {
        if (backend_.read_only()) {
          err = EROFS;
          break;
        }
        if (dispatch_change(req, reply)) return;
      }
      // Locks (the kernel then keeps them locally), ioctl, poll, bmap, DAX
      // mappings: not offered.
      err = ENOSYS;
      break;
  }
  if (err) reply.error(err);
}

bool FuseServer::dispatch_change(const FuseRequest& req, FuseReply& reply) {
  const std::uint64_t node = req.nodeid();
  const FuseCaller who = caller_of(req.header);
  int err = 0;
  fuse_entry_out entry{};
  switch (req.opcode()) {
    case FUSE_SETATTR: {
      fuse_attr_out out{};
      err = backend_.setattr(who, node, std::get<fuse_setattr_in>(req.args), out);
      if (!err) reply.set(out);
      break;
    }
    case FUSE_WRITE: {
      const auto& in = std::get<fuse_write_in>(req.args);
      fuse_write_out out{};
      err = backend_.write(node, in.fh, in.offset, req.data, in.write_flags, out.size);
      if (!err) reply.set(out);
      break;
    }
    case FUSE_CREATE: {
      fuse_open_out open{};
      err = backend_.create(who, node, req.name, std::get<fuse_create_in>(req.args), entry, open);
      if (!err) reply.set_pair(entry, open);
      break;
    }
    case FUSE_MKNOD: {
      const auto& in = std::get<fuse_mknod_in>(req.args);
      err = backend_.mknod(who, node, req.name, in.mode, in.rdev, entry);
      if (!err) reply.set(entry);
      break;
    }
    case FUSE_MKDIR:
      err = backend_.mkdir(who, node, req.name, std::get<fuse_mkdir_in>(req.args).mode, entry);
      if (!err) reply.set(entry);
      break;
    case FUSE_SYMLINK:
      err = backend_.symlink(who, node, req.name, req.name2, entry);
      if (!err) reply.set(entry);
      break;
    case FUSE_LINK:
      err = backend_.link(std::get<fuse_link_in>(req.args).oldnodeid, node, req.name, entry);
      if (!err) reply.set(entry);
      break;
    case FUSE_UNLINK:
      err = backend_.unlink(node, req.name);
      break;
    case FUSE_RMDIR:
      err = backend_.rmdir(node, req.name);
      break;
    case FUSE_RENAME:
    case FUSE_RENAME2: {
      const auto& in = std::get<fuse_rename2_in>(req.args);
      err = backend_.rename(node, req.name, in.newdir, req.name2, in.flags);
      break;
    }
    case FUSE_SETXATTR: {
      const auto& in = std::get<FuseSetxattr>(req.args);
      err = backend_.setxattr(node, req.name, req.data, in.flags);
      break;
    }
    case FUSE_REMOVEXATTR:
      err = backend_.removexattr(node, req.name);
      break;
    case FUSE_FALLOCATE: {
      const auto& in = std::get<fuse_fallocate_in>(req.args);
      err = backend_.fallocate(node, in.fh, in.offset, in.length, in.mode);
      break;
    }
    case FUSE_COPY_FILE_RANGE: {
      fuse_write_out out{};
      std::uint64_t copied = 0;
      err = backend_.copy_file_range(node, std::get<fuse_copy_file_range_in>(req.args), copied);
      // The reply's size is 32 bits; backends copy less than 4 GiB per call.
      out.size = static_cast<std::uint32_t>(std::min<std::uint64_t>(copied, UINT32_MAX));
      if (!err) reply.set(out);
      break;
    }
    case FUSE_TMPFILE:
      // O_TMPFILE: ENOSYS makes the kernel answer EOPNOTSUPP from then on.
      err = ENOSYS;
      break;
    default:
      return false;
  }
  if (err) reply.error(err);
  return true;
}

}  // namespace moat::fs
