// moat::Sandbox's file methods: thin wrappers over the file streams
// (file_client.h) and, for copy_in/copy_out, the host's tar side (host_tar.h).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "proto/file_ops.h"
#include "sandbox/file_client.h"
#include "sandbox/host_tar.h"
#include "sandbox/sandbox_impl.h"
#include "util/write_all.h"

namespace moat {
namespace {

constexpr std::size_t kChunk = 64 * 1024;

FileInfo to_info(const proto::FileStat& s) {
  FileInfo i;
  i.type = static_cast<FileType>(s.type);
  i.mode = s.mode;
  i.uid = s.uid;
  i.gid = s.gid;
  i.size = s.size;
  i.nlink = s.nlink;
  i.mtime_ns = s.mtime_ns;
  i.target = s.target;
  return i;
}

proto::FileRequest request(std::string_view op, const std::string& path) {
  proto::FileRequest r;
  r.op = std::string(op);
  r.path = path;
  return r;
}

// "/a/b/" -> "/a/b"; "a" -> "/a" (guest paths are absolute; relative ones
// are taken from the guest's root).
std::string guest_path_of(std::string p) {
  if (p.empty() || p[0] != '/') p = "/" + p;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string strip_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string base_name(const std::string& p) {
  auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string dir_name(const std::string& p) {
  auto slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

// Every chunk of a read or tar_out stream to `sink`, to the stream's end.
Status receive_all(sandbox::DataReceiver& rx, const std::function<Status(std::string_view)>& sink) {
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto chunk, rx.next());
    if (!chunk) return ok_status();
    MOAT_TRY(sink(*chunk));
  }
}

// A host fd, read to EOF, as the data of a write or tar_in stream.
Status send_all(sandbox::DataSender& tx, int host_fd, const char* what) {
  std::string buf(kChunk, '\0');
  while (true) {
    ssize_t n = ::read(host_fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(what);
    if (n == 0) return ok_status();
    MOAT_TRY(tx.send(std::string_view(buf.data(), static_cast<std::size_t>(n))));
  }
}

Status check_name(const std::string& name, const std::string& path) {
  if (name.empty() || name == "." || name == "..")
    return make_error("cannot copy " + path + ": give a path with a file name", EINVAL);
  return ok_status();
}

}  // namespace

Result<FileInfo> Sandbox::stat(const std::string& guest_path, bool follow_symlink) {
  MOAT_ASSIGN_OR_RETURN(auto s, sandbox::stat_file(impl_->conn, guest_path, follow_symlink));
  return to_info(s);
}

Result<std::vector<DirEntry>> Sandbox::list_dir(const std::string& guest_path) {
  MOAT_ASSIGN_OR_RETURN(auto entries, sandbox::list_dir(impl_->conn, guest_path));
  std::vector<DirEntry> out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.push_back({e.name, to_info(e.stat)});
  return out;
}

Status Sandbox::read_file(const std::string& guest_path,
                          const std::function<Status(std::string_view)>& sink) {
  sandbox::DataReceiver rx(impl_->conn, request(proto::msg::kRead, guest_path));
  return receive_all(rx, sink);
}

Status Sandbox::read_file(const std::string& guest_path, int host_fd) {
  return read_file(guest_path, [host_fd](std::string_view d) { return write_all(host_fd, d); });
}

Status Sandbox::write_file(const std::string& guest_path, int host_fd, const WriteFileOptions& o) {
  auto r = request(proto::msg::kWrite, guest_path);
  r.mode = o.mode;
  r.uid = o.uid;
  r.gid = o.gid;
  r.append = o.append;
  r.exclusive = o.exclusive;
  sandbox::DataSender tx(impl_->conn, r);
  MOAT_TRY(send_all(tx, host_fd, "read"));
  MOAT_TRY(tx.finish());
  return ok_status();
}

Status Sandbox::write_file(const std::string& guest_path, std::string_view bytes, const WriteFileOptions& o) {
  auto r = request(proto::msg::kWrite, guest_path);
  r.mode = o.mode;
  r.uid = o.uid;
  r.gid = o.gid;
  r.append = o.append;
  r.exclusive = o.exclusive;
  sandbox::DataSender tx(impl_->conn, r);
  MOAT_TRY(tx.send(bytes));
  MOAT_TRY(tx.finish());
  return ok_status();
}

Status Sandbox::mkdir(const std::string& guest_path, bool parents, std::uint32_t mode) {
  auto r = request(proto::msg::kMkdir, guest_path);
  r.parents = parents;
  r.mode = mode;
  MOAT_TRY(sandbox::file_request(impl_->conn, r));
  return ok_status();
}

Status Sandbox::remove(const std::string& guest_path, bool recursive) {
  auto r = request(proto::msg::kRemove, guest_path);
  r.recursive = recursive;
  MOAT_TRY(sandbox::file_request(impl_->conn, r));
  return ok_status();
}

Status Sandbox::rename(const std::string& from, const std::string& to) {
  auto r = request(proto::msg::kRename, from);
  r.to = to;
  MOAT_TRY(sandbox::file_request(impl_->conn, r));
  return ok_status();
}

Status Sandbox::chmod(const std::string& guest_path, std::uint32_t mode) {
  auto r = request(proto::msg::kChmod, guest_path);
  r.mode = mode;
  MOAT_TRY(sandbox::file_request(impl_->conn, r));
  return ok_status();
}

Status Sandbox::chown(const std::string& guest_path, std::optional<std::uint32_t> uid,
                      std::optional<std::uint32_t> gid, bool follow_symlink) {
  auto r = request(proto::msg::kChown, guest_path);
  r.uid = uid;
  r.gid = gid;
  r.follow = follow_symlink;
  MOAT_TRY(sandbox::file_request(impl_->conn, r));
  return ok_status();
}

Status Sandbox::copy_in(const std::string& host_path, const std::string& guest_path, const CopyOptions& o) {
  std::string src = strip_slashes(host_path);
  struct stat hst {};
  if (::lstat(src.c_str(), &hst) != 0) return errno_error(host_path);
  std::string dst = guest_path_of(guest_path);
  bool dst_wants_dir = !guest_path.empty() && guest_path.back() == '/';

  // Into an existing directory the source keeps its name; otherwise the
  // destination names it, in a parent directory that must exist.
  std::string dir, name;
  auto target = sandbox::stat_file(impl_->conn, dst, /*follow=*/true);
  if (target && target->type == proto::FileType::kDir) {
    dir = dst;
    name = base_name(src);
  } else if (target || target.error().code == ENOENT) {
    if (!target && dst_wants_dir)
      return make_error("destination directory " + guest_path + " does not exist in the sandbox", ENOENT);
    if (target && S_ISDIR(hst.st_mode))
      return make_error("cannot copy directory " + host_path + " onto file " + guest_path, ENOTDIR);
    dir = dir_name(dst);
    name = base_name(dst);
  } else {
    return target.error().wrap(guest_path);
  }
  MOAT_TRY(check_name(name, host_path));

  auto req = request(proto::msg::kTarIn, dir);
  sandbox::DataSender tx(impl_->conn, req);
  sandbox::HostTarOptions topt{o.preserve_owner};
  auto sent = sandbox::write_host_tar(src, name, topt, [&tx](std::string_view d) { return tx.send(d); });
  if (!sent) return sent.error().wrap("copy " + host_path + " to " + guest_path);
  auto done = tx.finish();
  if (!done) return done.error().wrap("copy " + host_path + " to " + guest_path);
  return ok_status();
}

Status Sandbox::copy_out(const std::string& guest_path, const std::string& host_path, const CopyOptions& o) {
  std::string src = guest_path_of(guest_path);
  MOAT_ASSIGN_OR_RETURN(auto sst, sandbox::stat_file(impl_->conn, src, /*follow=*/false));
  std::string dst = strip_slashes(host_path);
  bool dst_wants_dir = !host_path.empty() && host_path.back() == '/';

  std::string dir, name;
  struct stat hst {};
  int rc = ::stat(dst.c_str(), &hst);
  int err = rc == 0 ? 0 : errno;
  if (rc == 0 && S_ISDIR(hst.st_mode)) {
    dir = dst;
    name = src == "/" ? "root" : base_name(src);
  } else if (err == ENOENT || (rc == 0 && S_ISREG(hst.st_mode))) {
    bool exists = rc == 0;
    if (!exists && dst_wants_dir)
      return make_error("destination directory " + host_path + " does not exist", ENOENT);
    if (exists && sst.type == proto::FileType::kDir)
      return make_error("cannot copy directory " + guest_path + " onto file " + host_path, ENOTDIR);
    dir = dir_name(dst);
    name = base_name(dst);
  } else {
    return rc == 0 ? make_error(host_path + " exists and is not a regular file or directory", EEXIST)
                   : errno_error(host_path, err);
  }
  MOAT_TRY(check_name(name, host_path));

  auto req = request(proto::msg::kTarOut, src);
  req.name = name;
  sandbox::DataReceiver rx(impl_->conn, req);
  sandbox::HostTarOptions topt{o.preserve_owner};
  auto got = sandbox::extract_host_tar(dir, name, topt, [&rx]() { return rx.next(); });
  // (It reads on to the agent's result, so the agent's errors fail it too.)
  if (!got) return got.error().wrap("copy " + guest_path + " to " + host_path);
  return ok_status();
}

Result<ArchiveTotals> Sandbox::read_archive(const std::string& guest_path,
                                            const std::function<Status(std::string_view)>& sink) {
  std::string src = guest_path_of(guest_path);
  auto req = request(proto::msg::kTarOut, src);
  req.name = src == "/" ? "root" : base_name(src);
  sandbox::DataReceiver rx(impl_->conn, req);
  if (Status got = receive_all(rx, sink); !got) return got.error().wrap("archive of " + guest_path);
  return ArchiveTotals{rx.result().entries, rx.result().bytes};
}

Result<ArchiveTotals> Sandbox::write_archive(const std::string& guest_dir, int host_fd) {
  std::string dir = guest_path_of(guest_dir);
  MOAT_ASSIGN_OR_RETURN(auto st, sandbox::stat_file(impl_->conn, dir, /*follow=*/true));
  if (st.type != proto::FileType::kDir) return make_error(guest_dir + " is not a directory in the sandbox", ENOTDIR);
  sandbox::DataSender tx(impl_->conn, request(proto::msg::kTarIn, dir));
  if (Status sent = send_all(tx, host_fd, "read the archive"); !sent) return sent.error().wrap("extract into " + guest_dir);
  auto done = tx.finish();
  if (!done) return done.error().wrap("extract into " + guest_dir);
  return ArchiveTotals{done->entries, done->bytes};
}

}  // namespace moat
