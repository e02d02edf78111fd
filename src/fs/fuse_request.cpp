#include "fs/fuse_request.h"

#include <cstring>
#include <string>

namespace moat::fs {
namespace {

Error malformed(const std::string& what) { return make_error("malformed FUSE request: " + what, EINVAL); }

// Copies a fixed-size structure from the front of `body`.
template <typename T>
Result<T> take(std::span<const std::uint8_t>& body, const char* what) {
  if (body.size() < sizeof(T)) return malformed(std::string(what) + " body too short");
  T out;
  std::memcpy(&out, body.data(), sizeof(T));
  body = body.subspan(sizeof(T));
  return out;
}

// A NUL-terminated string of 1..max_len bytes at the front of `body`.
Result<std::string_view> take_cstring(std::span<const std::uint8_t>& body, std::size_t max_len,
                                      const char* what) {
  const void* nul = std::memchr(body.data(), 0, body.size());
  if (!nul) return malformed(std::string(what) + " without NUL");
  std::size_t len = static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - body.data());
  if (len == 0 || len > max_len) return malformed(std::string("bad ") + what + " length");
  std::string_view s(reinterpret_cast<const char*>(body.data()), len);
  body = body.subspan(len + 1);
  return s;
}

// A directory entry name: 1..255 bytes, no '/', not "." or "..". Backends
// resolve it as one component under its parent, so these checks are what
// keeps a name from walking anywhere else.
Result<std::string_view> take_name(std::span<const std::uint8_t>& body) {
  MOAT_ASSIGN_OR_RETURN(std::string_view name, take_cstring(body, 255, "name"));
  if (name.find('/') != std::string_view::npos) return malformed("name with '/'");
  if (name == "." || name == "..") return malformed("name is . or ..");
  return name;
}

// Exactly `size` bytes of payload, the rest of the body.
Result<std::span<const std::uint8_t>> take_data(std::span<const std::uint8_t>& body,
                                                std::uint64_t size, std::uint64_t max,
                                                const char* what) {
  if (size > max) return malformed(std::string(what) + " too large");
  if (body.size() != size) return malformed(std::string(what) + " size disagrees with the body");
  auto data = body;
  body = {};
  return data;
}

// A NUL-terminated xattr name: 1..255 bytes (XATTR_NAME_MAX).
Result<std::string_view> take_xattr_name(std::span<const std::uint8_t>& body) {
  return take_cstring(body, 255, "xattr name");
}

// The structure `T` and then an entry name (CREATE, MKNOD, MKDIR, LINK).
template <typename T>
Status take_with_name(FuseRequest& req, std::span<const std::uint8_t> body, const char* what) {
  MOAT_ASSIGN_OR_RETURN(auto in, take<T>(body, what));
  MOAT_ASSIGN_OR_RETURN(req.name, take_name(body));
  req.args = in;
  return ok_status();
}

// The tree-changing requests.
Status decode_write_body(FuseRequest& req, std::span<const std::uint8_t> body) {
  switch (req.opcode()) {
    case FUSE_SETATTR: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_setattr_in>(body, "SETATTR"));
      req.args = in;
      return ok_status();
    }
    case FUSE_WRITE: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_write_in>(body, "WRITE"));
      MOAT_ASSIGN_OR_RETURN(req.data, take_data(body, in.size, kFuseMaxWrite, "WRITE data"));
      req.args = in;
      return ok_status();
    }
    case FUSE_CREATE: return take_with_name<fuse_create_in>(req, body, "CREATE");
    case FUSE_MKNOD: return take_with_name<fuse_mknod_in>(req, body, "MKNOD");
    case FUSE_MKDIR: return take_with_name<fuse_mkdir_in>(req, body, "MKDIR");
    case FUSE_LINK: return take_with_name<fuse_link_in>(req, body, "LINK");
    case FUSE_SYMLINK: {
      MOAT_ASSIGN_OR_RETURN(req.name, take_name(body));
      MOAT_ASSIGN_OR_RETURN(req.name2, take_cstring(body, kFuseMaxSymlinkTarget, "symlink target"));
      return ok_status();
    }
    case FUSE_UNLINK:
    case FUSE_RMDIR: {
      MOAT_ASSIGN_OR_RETURN(req.name, take_name(body));
      return ok_status();
    }
    case FUSE_RENAME:
    case FUSE_RENAME2: {
      fuse_rename2_in in{};
      if (req.opcode() == FUSE_RENAME) {
        MOAT_ASSIGN_OR_RETURN(auto old, take<fuse_rename_in>(body, "RENAME"));
        in.newdir = old.newdir;
      } else {
        MOAT_ASSIGN_OR_RETURN(in, take<fuse_rename2_in>(body, "RENAME2"));
      }
      MOAT_ASSIGN_OR_RETURN(req.name, take_name(body));
      MOAT_ASSIGN_OR_RETURN(req.name2, take_name(body));
      req.args = in;
      return ok_status();
    }
    case FUSE_SETXATTR: {
      if (body.size() < FUSE_COMPAT_SETXATTR_IN_SIZE) return malformed("SETXATTR body too short");
      FuseSetxattr in;
      std::memcpy(&in.size, body.data(), 4);
      std::memcpy(&in.flags, body.data() + 4, 4);
      body = body.subspan(FUSE_COMPAT_SETXATTR_IN_SIZE);
      MOAT_ASSIGN_OR_RETURN(req.name, take_xattr_name(body));
      MOAT_ASSIGN_OR_RETURN(req.data, take_data(body, in.size, kFuseMaxXattrValue, "xattr value"));
      req.args = in;
      return ok_status();
    }
    case FUSE_REMOVEXATTR: {
      MOAT_ASSIGN_OR_RETURN(req.name, take_xattr_name(body));
      return ok_status();
    }
    case FUSE_FALLOCATE: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_fallocate_in>(body, "FALLOCATE"));
      req.args = in;
      return ok_status();
    }
    case FUSE_COPY_FILE_RANGE: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_copy_file_range_in>(body, "COPY_FILE_RANGE"));
      req.args = in;
      return ok_status();
    }
    default:
      return make_error("not a tree-changing opcode", ENOSYS);
  }
}

Status decode_body(FuseRequest& req, std::span<const std::uint8_t> body) {
  switch (req.opcode()) {
    case FUSE_INIT: {
      // Kernels before 7.36 send only major, minor, max_readahead and flags.
      constexpr std::size_t kOldInitSize = 16;
      if (body.size() < kOldInitSize) return malformed("INIT body too short");
      fuse_init_in in{};
      std::memcpy(&in, body.data(), std::min(body.size(), sizeof in));
      req.args = in;
      return ok_status();
    }
    case FUSE_LOOKUP: {
      MOAT_ASSIGN_OR_RETURN(req.name, take_name(body));
      return ok_status();
    }
    case FUSE_FORGET: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_forget_in>(body, "FORGET"));
      req.args = in;
      return ok_status();
    }
    case FUSE_BATCH_FORGET: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_batch_forget_in>(body, "BATCH_FORGET"));
      if (in.count > body.size() / sizeof(fuse_forget_one)) return malformed("BATCH_FORGET count");
      FuseBatchForget batch;
      batch.items.resize(in.count);
      if (in.count) std::memcpy(batch.items.data(), body.data(), in.count * sizeof(fuse_forget_one));
      req.args = std::move(batch);
      return ok_status();
    }
    case FUSE_GETATTR: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_getattr_in>(body, "GETATTR"));
      req.args = in;
      return ok_status();
    }
    case FUSE_OPEN:
    case FUSE_OPENDIR: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_open_in>(body, "OPEN"));
      req.args = in;
      return ok_status();
    }
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_read_in>(body, "READ"));
      req.args = in;
      return ok_status();
    }
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_release_in>(body, "RELEASE"));
      req.args = in;
      return ok_status();
    }
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_getxattr_in>(body, "GETXATTR"));
      FuseGetxattr x{in, {}};
      if (req.opcode() == FUSE_GETXATTR) {
        MOAT_ASSIGN_OR_RETURN(x.name, take_xattr_name(body));
      }
      req.args = x;
      return ok_status();
    }
    case FUSE_ACCESS: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_access_in>(body, "ACCESS"));
      req.args = in;
      return ok_status();
    }
    case FUSE_LSEEK: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_lseek_in>(body, "LSEEK"));
      req.args = in;
      return ok_status();
    }
    case FUSE_INTERRUPT: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_interrupt_in>(body, "INTERRUPT"));
      req.args = in;
      return ok_status();
    }
    case FUSE_FLUSH: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_flush_in>(body, "FLUSH"));
      req.args = in;
      return ok_status();
    }
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR: {
      MOAT_ASSIGN_OR_RETURN(auto in, take<fuse_fsync_in>(body, "FSYNC"));
      req.args = in;
      return ok_status();
    }
    case FUSE_READLINK:
    case FUSE_STATFS:
    case FUSE_DESTROY:
    case FUSE_SYNCFS:
      return ok_status();
    case FUSE_SETATTR: case FUSE_SYMLINK: case FUSE_MKNOD: case FUSE_MKDIR:
    case FUSE_UNLINK: case FUSE_RMDIR: case FUSE_RENAME: case FUSE_LINK:
    case FUSE_WRITE: case FUSE_SETXATTR: case FUSE_REMOVEXATTR: case FUSE_CREATE:
    case FUSE_FALLOCATE: case FUSE_RENAME2: case FUSE_COPY_FILE_RANGE:
      return decode_write_body(req, body);
    // Requests that need state this server never grants: their bodies are
    // not interpreted, the dispatcher refuses them.
    case FUSE_TMPFILE: case FUSE_GETLK: case FUSE_SETLK: case FUSE_SETLKW: case FUSE_IOCTL: case FUSE_POLL:
    case FUSE_BMAP: case FUSE_NOTIFY_REPLY: case FUSE_SETUPMAPPING: case FUSE_REMOVEMAPPING:
      return ok_status();
    default:
      return make_error("unknown FUSE opcode " + std::to_string(req.opcode()), ENOSYS);
  }
}

}  // namespace

Result<fuse_in_header> decode_header(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < sizeof(fuse_in_header)) return malformed("shorter than its header");
  fuse_in_header h;
  std::memcpy(&h, bytes.data(), sizeof h);
  if (h.len != bytes.size()) {
    return malformed("length " + std::to_string(h.len) + " but " + std::to_string(bytes.size()) +
                     " bytes");
  }
  return h;
}

Result<FuseRequest> decode_request(std::span<const std::uint8_t> bytes) {
  MOAT_ASSIGN_OR_RETURN(fuse_in_header h, decode_header(bytes));
  FuseRequest req;
  req.header = h;
  req.body = bytes.subspan(sizeof(fuse_in_header));
  MOAT_TRY(decode_body(req, req.body));
  return req;
}

const char* fuse_opcode_name(std::uint32_t opcode) {
  switch (opcode) {
    case FUSE_LOOKUP: return "LOOKUP";
    case FUSE_FORGET: return "FORGET";
    case FUSE_GETATTR: return "GETATTR";
    case FUSE_READLINK: return "READLINK";
    case FUSE_OPEN: return "OPEN";
    case FUSE_READ: return "READ";
    case FUSE_STATFS: return "STATFS";
    case FUSE_RELEASE: return "RELEASE";
    case FUSE_GETXATTR: return "GETXATTR";
    case FUSE_LISTXATTR: return "LISTXATTR";
    case FUSE_FLUSH: return "FLUSH";
    case FUSE_INIT: return "INIT";
    case FUSE_OPENDIR: return "OPENDIR";
    case FUSE_READDIR: return "READDIR";
    case FUSE_RELEASEDIR: return "RELEASEDIR";
    case FUSE_ACCESS: return "ACCESS";
    case FUSE_INTERRUPT: return "INTERRUPT";
    case FUSE_DESTROY: return "DESTROY";
    case FUSE_BATCH_FORGET: return "BATCH_FORGET";
    case FUSE_READDIRPLUS: return "READDIRPLUS";
    case FUSE_LSEEK: return "LSEEK";
    case FUSE_SETATTR: return "SETATTR";
    case FUSE_SYMLINK: return "SYMLINK";
    case FUSE_MKNOD: return "MKNOD";
    case FUSE_MKDIR: return "MKDIR";
    case FUSE_UNLINK: return "UNLINK";
    case FUSE_RMDIR: return "RMDIR";
    case FUSE_RENAME: return "RENAME";
    case FUSE_LINK: return "LINK";
    case FUSE_WRITE: return "WRITE";
    case FUSE_FSYNC: return "FSYNC";
    case FUSE_SETXATTR: return "SETXATTR";
    case FUSE_REMOVEXATTR: return "REMOVEXATTR";
    case FUSE_FSYNCDIR: return "FSYNCDIR";
    case FUSE_CREATE: return "CREATE";
    case FUSE_FALLOCATE: return "FALLOCATE";
    case FUSE_RENAME2: return "RENAME2";
    case FUSE_COPY_FILE_RANGE: return "COPY_FILE_RANGE";
    case FUSE_SYNCFS: return "SYNCFS";
    case FUSE_TMPFILE: return "TMPFILE";
    default: return "other";
  }
}

}  // namespace moat::fs
