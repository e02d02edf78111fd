#include "fs/fuse_server.h"

#include <algorithm>
#include <string>

namespace moat::fs {
namespace {

// Flags this server asks for when the kernel offers them.
constexpr std::uint64_t kWantedFlags =
    FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES |
    FUSE_CACHE_SYMLINKS | FUSE_INIT_EXT;

constexpr std::uint32_t kMaxXattrSize = 65536;  // XATTR_SIZE_MAX / XATTR_LIST_MAX

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
    case FUSE_FLUSH:
      // ENOSYS tells the kernel never to send FLUSH again, which saves a
      // synchronous round trip on every close(); nothing is ever dirty.
      err = ENOSYS;
      break;
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
    case FUSE_SYNCFS:
      break;  // nothing is ever dirty
    case FUSE_DESTROY:
      destroyed_.store(true, std::memory_order_release);
      break;
    case FUSE_SETATTR: case FUSE_SYMLINK: case FUSE_MKNOD: case FUSE_MKDIR:
    case FUSE_UNLINK: case FUSE_RMDIR: case FUSE_RENAME: case FUSE_LINK:
    case FUSE_WRITE: case FUSE_SETXATTR: case FUSE_REMOVEXATTR: case FUSE_CREATE:
    case FUSE_FALLOCATE: case FUSE_RENAME2: case FUSE_COPY_FILE_RANGE: case FUSE_TMPFILE:
      err = backend_.modify(req.opcode(), node, req.body);
      break;
    default:
      // Locks (the kernel then keeps them locally), ioctl, poll, bmap, DAX
      // mappings: not offered.
      err = ENOSYS;
      break;
  }
  if (err) reply.error(err);
}

}  // namespace moat::fs
