// The directory backend through the FUSE core without a kernel: crafted
// request bytes go through the decoder and the dispatcher to a DirBackend on
// a temporary directory; replies and the host files are checked.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fs/dir_backend.h"
#include "fs/fuse_request.h"
#include "fs/fuse_server.h"
#include "fs/stat_xattr.h"
#include "fs/volume_quota.h"

namespace moat::fs {
namespace {

using Bytes = std::vector<std::uint8_t>;

template <typename T>
Bytes bytes_of(const T& v) {
  auto* b = reinterpret_cast<const std::uint8_t*>(&v);
  return {b, b + sizeof v};
}

Bytes cstr(const std::string& s) {
  Bytes out(s.begin(), s.end());
  out.push_back(0);
  return out;
}

Bytes raw(const std::string& s) { return Bytes(s.begin(), s.end()); }

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string host_read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void host_write(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

std::string host_xattr(const std::string& path, const std::string& name) {
  char buf[256];
  ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof buf);
  return n < 0 ? std::string("<") + std::strerror(errno) + ">" : std::string(buf, n);
}

// Backend options with a size limit of `bytes`.
DirBackendOptions limited(std::uint64_t bytes) {
  DirBackendOptions o;
  o.size_limit = bytes;
  return o;
}

class FsDirBackend : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-dir-backend-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ + "/root";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    open_server(false);
  }
  void TearDown() override {
    server_.reset();
    backend_.reset();
    std::filesystem::remove_all(base_);
  }

  void open_server(bool read_only, FuseServerOptions options = {}, DirBackendOptions dir = {}) {
    server_.reset();
    backend_.reset();
    dir.read_only = read_only;
    auto b = open_dir_backend(root_, dir);
    ASSERT_TRUE(b.ok()) << b.error().message;
    backend_ = std::move(*b);
    server_ = std::make_unique<FuseServer>(*backend_, options);
    fuse_init_in in{};
    in.major = 7;
    in.minor = 38;
    in.max_readahead = 1 << 17;
    in.flags = FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES | FUSE_WRITEBACK_CACHE | FUSE_PARALLEL_DIROPS;
    init_out_ = as<fuse_init_out>(call(FUSE_INIT, 0, bytes_of(in)));
  }

  // Sends one request as uid/gid; returns the reply payload, checking the error.
  std::string call(std::uint32_t opcode, std::uint64_t nodeid, const Bytes& body, int want_error = 0) {
    fuse_in_header h{};
    h.len = static_cast<std::uint32_t>(sizeof h + body.size());
    h.opcode = opcode;
    h.unique = ++unique_;
    h.nodeid = nodeid;
    h.uid = uid_;
    h.gid = gid_;
    Bytes m = cat(bytes_of(h), body);
    server_->handle(m, reply_);
    EXPECT_TRUE(reply_.should_send());
    auto iov = reply_.iovecs();
    fuse_out_header out;
    std::memcpy(&out, iov[0].iov_base, sizeof out);
    EXPECT_EQ(out.unique, unique_);
    EXPECT_EQ(out.error, -want_error) << fuse_opcode_name(opcode) << ": got "
                                      << std::strerror(-out.error);
    return std::string(static_cast<const char*>(iov[1].iov_base), iov[1].iov_len);
  }
  void call_noreply(std::uint32_t opcode, std::uint64_t nodeid, const Bytes& body) {
    fuse_in_header h{};
    h.len = static_cast<std::uint32_t>(sizeof h + body.size());
    h.opcode = opcode;
    h.unique = ++unique_;
    h.nodeid = nodeid;
    server_->handle(cat(bytes_of(h), body), reply_);
    EXPECT_FALSE(reply_.should_send());
  }

  template <typename T>
  T as(const std::string& payload) {
    EXPECT_EQ(payload.size(), sizeof(T));
    T v{};
    std::memcpy(&v, payload.data(), std::min(payload.size(), sizeof v));
    return v;
  }

  fuse_entry_out lookup(std::uint64_t parent, const std::string& name, int err = 0) {
    auto p = call(FUSE_LOOKUP, parent, cstr(name), err);
    return err ? fuse_entry_out{} : as<fuse_entry_out>(p);
  }
  fuse_attr getattr(std::uint64_t node) {
    return as<fuse_attr_out>(call(FUSE_GETATTR, node, bytes_of(fuse_getattr_in{}))).attr;
  }
  // CREATE; returns {entry, fh}.
  std::pair<fuse_entry_out, std::uint64_t> create(std::uint64_t parent, const std::string& name,
                                                  std::uint32_t mode, std::uint32_t flags = O_RDWR) {
    fuse_create_in in{};
    in.flags = flags;
    in.mode = S_IFREG | mode;
    auto p = call(FUSE_CREATE, parent, cat(bytes_of(in), cstr(name)));
    EXPECT_EQ(p.size(), sizeof(fuse_entry_out) + sizeof(fuse_open_out));
    fuse_entry_out e{};
    fuse_open_out o{};
    std::memcpy(&e, p.data(), sizeof e);
    std::memcpy(&o, p.data() + sizeof e, sizeof o);
    return {e, o.fh};
  }
  std::uint64_t open(std::uint64_t node, std::uint32_t flags, int err = 0) {
    fuse_open_in in{};
    in.flags = flags;
    auto p = call(FUSE_OPEN, node, bytes_of(in), err);
    return err ? 0 : as<fuse_open_out>(p).fh;
  }
  std::uint32_t write(std::uint64_t node, std::uint64_t fh, std::uint64_t off, const std::string& data) {
    fuse_write_in in{};
    in.fh = fh;
    in.offset = off;
    in.size = static_cast<std::uint32_t>(data.size());
    return as<fuse_write_out>(call(FUSE_WRITE, node, cat(bytes_of(in), raw(data)))).size;
  }
  std::string read(std::uint64_t node, std::uint64_t fh, std::uint64_t off, std::uint32_t size) {
    fuse_read_in in{};
    in.fh = fh;
    in.offset = off;
    in.size = size;
    return call(FUSE_READ, node, bytes_of(in));
  }
  fuse_entry_out mkdir(std::uint64_t parent, const std::string& name, std::uint32_t mode) {
    fuse_mkdir_in in{};
    in.mode = mode;
    return as<fuse_entry_out>(call(FUSE_MKDIR, parent, cat(bytes_of(in), cstr(name))));
  }
  fuse_attr setattr(std::uint64_t node, fuse_setattr_in in) {
    return as<fuse_attr_out>(call(FUSE_SETATTR, node, bytes_of(in))).attr;
  }
  Bytes setxattr_body(const std::string& name, const std::string& value) {
    std::uint32_t head[2] = {static_cast<std::uint32_t>(value.size()), 0};
    Bytes b(reinterpret_cast<std::uint8_t*>(head), reinterpret_cast<std::uint8_t*>(head) + 8);
    return cat(cat(b, cstr(name)), raw(value));
  }
  std::string getxattr(std::uint64_t node, const std::string& name, int err = 0) {
    fuse_getxattr_in in{};
    in.size = 65536;
    return call(FUSE_GETXATTR, node, cat(bytes_of(in), cstr(name)), err);
  }
  std::set<std::string> listxattr(std::uint64_t node) {
    fuse_getxattr_in in{};
    in.size = 65536;
    std::string names = call(FUSE_LISTXATTR, node, bytes_of(in));
    std::set<std::string> out;
    for (std::size_t p = 0; p < names.size(); p += std::strlen(names.c_str() + p) + 1) {
      out.insert(names.c_str() + p);
    }
    return out;
  }
  // Names of a directory via OPENDIR + READDIR(PLUS) in chunks of `size`.
  struct Listed {
    std::uint32_t type = 0;
    std::uint64_t ino = 0;
    fuse_entry_out entry{};
  };
  std::map<std::string, Listed> list(std::uint64_t dir, bool plus, std::uint32_t size) {
    fuse_open_in oi{};
    std::uint64_t fh = as<fuse_open_out>(call(FUSE_OPENDIR, dir, bytes_of(oi))).fh;
    std::map<std::string, Listed> out;
    std::uint64_t off = 0;
    for (int guard = 0; guard < 10000; ++guard) {
      fuse_read_in in{};
      in.fh = fh;
      in.offset = off;
      in.size = size;
      std::string p = call(plus ? FUSE_READDIRPLUS : FUSE_READDIR, dir, bytes_of(in));
      if (p.empty()) break;
      std::size_t pos = 0;
      while (pos < p.size()) {
        fuse_entry_out e{};
        if (plus) {
          std::memcpy(&e, p.data() + pos, sizeof e);
          pos += sizeof e;
        }
        fuse_dirent d;
        std::memcpy(&d, p.data() + pos, sizeof d);
        std::string name(p.data() + pos + sizeof d, d.namelen);
        EXPECT_TRUE(out.emplace(name, Listed{d.type, d.ino, e}).second) << "repeated " << name;
        off = d.off;
        pos += FUSE_DIRENT_ALIGN(sizeof d + d.namelen);
      }
    }
    fuse_release_in ri{};
    ri.fh = fh;
    call(FUSE_RELEASEDIR, dir, bytes_of(ri));
    return out;
  }

  std::string base_, root_;
  std::unique_ptr<FsBackend> backend_;
  std::unique_ptr<FuseServer> server_;
  FuseReply reply_;
  fuse_init_out init_out_{};
  std::uint64_t unique_ = 100;
  std::uint32_t uid_ = 0, gid_ = 0;
};

TEST_F(FsDirBackend, InitKeepsWritebackCacheOffUnlessAsked) {
  EXPECT_EQ(init_out_.flags, FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES | FUSE_PARALLEL_DIROPS);
  FuseServerOptions o;
  o.writeback_cache = true;
  open_server(false, o);
  EXPECT_EQ(init_out_.flags,
            FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES | FUSE_PARALLEL_DIROPS | FUSE_WRITEBACK_CACHE);
  EXPECT_TRUE(server_->session().writeback_cache);
  open_server(true, o);  // never for a read-only backend
  EXPECT_EQ(init_out_.flags, FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES | FUSE_PARALLEL_DIROPS);
}

TEST_F(FsDirBackend, CreateWriteReadRenameUnlink) {
  uid_ = 1000;
  gid_ = 1001;
  auto [f, fh] = create(1, "file", 0640);
  EXPECT_GE(f.nodeid, 2u);
  EXPECT_EQ(f.attr.mode, S_IFREG | 0640u);
  EXPECT_EQ(f.attr.uid, 1000u);
  EXPECT_EQ(f.attr.gid, 1001u);
  EXPECT_EQ(f.entry_valid, 1u);
  EXPECT_EQ(f.attr_valid, 1u);
  EXPECT_EQ(write(f.nodeid, fh, 0, "hello world"), 11u);
  EXPECT_EQ(write(f.nodeid, fh, 6, "WORLD!"), 6u);
  EXPECT_EQ(read(f.nodeid, fh, 0, 100), "hello WORLD!");
  EXPECT_EQ(read(f.nodeid, fh, 6, 3), "WOR");
  EXPECT_EQ(read(f.nodeid, fh, 100, 3), "");
  EXPECT_EQ(host_read(root_ + "/file"), "hello WORLD!");
  struct stat st {};
  ASSERT_EQ(::stat((root_ + "/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::geteuid());  // the host owner stays the server's
  EXPECT_EQ(st.st_mode, S_IFREG | 0640u);
  EXPECT_EQ(getattr(f.nodeid).size, 12u);
  // A handle of another node, or none, is refused.
  fuse_read_in ri{};
  ri.fh = fh + 100;
  ri.size = 10;
  call(FUSE_READ, f.nodeid, bytes_of(ri), EBADF);
  ri.fh = fh;
  call(FUSE_READ, 1, bytes_of(ri), EBADF);
  // Exclusive create of an existing name fails; plain create opens it.
  fuse_create_in ci{};
  ci.flags = O_RDWR | O_CREAT | O_EXCL;
  ci.mode = S_IFREG | 0600;
  call(FUSE_CREATE, 1, cat(bytes_of(ci), cstr("file")), EEXIST);
  auto [again, fh2] = create(1, "file", 0600);
  EXPECT_EQ(again.nodeid, f.nodeid);
  EXPECT_EQ(again.attr.mode, S_IFREG | 0640u);  // existing owner and mode kept

  fuse_flush_in fl{};
  fl.fh = fh;
  call(FUSE_FLUSH, f.nodeid, bytes_of(fl));
  fuse_fsync_in fs{};
  fs.fh = fh;
  call(FUSE_FSYNC, f.nodeid, bytes_of(fs));

  // SETATTR size and times.
  fuse_setattr_in sa{};
  sa.valid = FATTR_SIZE | FATTR_MTIME | FATTR_ATIME;
  sa.size = 5;
  sa.mtime = 1600000000;
  sa.mtimensec = 5;
  sa.atime = 1500000000;
  auto a = setattr(f.nodeid, sa);
  EXPECT_EQ(a.size, 5u);
  EXPECT_EQ(a.mtime, 1600000000u);
  EXPECT_EQ(a.mtimensec, 5u);
  EXPECT_EQ(a.atime, 1500000000u);
  EXPECT_EQ(host_read(root_ + "/file"), "hello");

  fuse_rename_in rn{};
  rn.newdir = 1;
  call(FUSE_RENAME, 1, cat(cat(bytes_of(rn), cstr("file")), cstr("moved")));
  EXPECT_EQ(host_read(root_ + "/moved"), "hello");
  EXPECT_NE(::access((root_ + "/file").c_str(), F_OK), 0);
  EXPECT_EQ(read(f.nodeid, fh, 0, 100), "hello");  // the handle follows the file
  EXPECT_EQ(lookup(1, "moved").nodeid, f.nodeid);
  lookup(1, "file", ENOENT);
  call(FUSE_UNLINK, 1, cstr("moved"));
  EXPECT_NE(::access((root_ + "/moved").c_str(), F_OK), 0);
  call(FUSE_UNLINK, 1, cstr("moved"), ENOENT);
  fuse_release_in rel{};
  rel.fh = fh;
  call(FUSE_RELEASE, f.nodeid, bytes_of(rel));
  call(FUSE_READ, f.nodeid, bytes_of(ri), EBADF);
}

TEST_F(FsDirBackend, MkdirSymlinkLinkRmdirAndHardlinks) {
  uid_ = 7;
  gid_ = 8;
  auto d = mkdir(1, "d", 0750);
  EXPECT_EQ(d.attr.mode, S_IFDIR | 0750u);
  EXPECT_EQ(d.attr.uid, 7u);
  auto sub = mkdir(d.nodeid, "sub", 0700);
  EXPECT_TRUE(std::filesystem::is_directory(root_ + "/d/sub"));
  // Symlinks are stored as themselves and never followed.
  auto l = as<fuse_entry_out>(call(FUSE_SYMLINK, d.nodeid, cat(cstr("l"), cstr("../../etc/passwd"))));
  EXPECT_EQ(l.attr.mode & S_IFMT, static_cast<std::uint32_t>(S_IFLNK));
  EXPECT_EQ(call(FUSE_READLINK, l.nodeid, {}), "../../etc/passwd");
  char target[64] = {};
  ASSERT_GT(::readlink((root_ + "/d/l").c_str(), target, sizeof target), 0);
  EXPECT_STREQ(target, "../../etc/passwd");
  // Hard links share a node id.
  auto [f, fh] = create(1, "f", 0644);
  fuse_link_in li{};
  li.oldnodeid = f.nodeid;
  auto h = as<fuse_entry_out>(call(FUSE_LINK, d.nodeid, cat(bytes_of(li), cstr("hard"))));
  EXPECT_EQ(h.nodeid, f.nodeid);
  EXPECT_EQ(h.attr.nlink, 2u);
  EXPECT_EQ(lookup(d.nodeid, "hard").nodeid, f.nodeid);
  li.oldnodeid = d.nodeid;
  call(FUSE_LINK, 1, cat(bytes_of(li), cstr("dirlink")), EPERM);
  // FORGET drops the node once every lookup is forgotten: f was counted by
  // CREATE, LINK and LOOKUP.
  call_noreply(FUSE_FORGET, f.nodeid, bytes_of(fuse_forget_in{2}));
  EXPECT_EQ(getattr(f.nodeid).nlink, 2u);
  fuse_batch_forget_in bf{};
  bf.count = 1;
  call_noreply(FUSE_BATCH_FORGET, 0, cat(bytes_of(bf), bytes_of(fuse_forget_one{f.nodeid, 1})));
  call(FUSE_GETATTR, f.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
  auto fresh = lookup(1, "f");
  EXPECT_NE(fresh.nodeid, f.nodeid);
  EXPECT_EQ(lookup(d.nodeid, "hard").nodeid, fresh.nodeid);

  call(FUSE_RMDIR, 1, cstr("d"), ENOTEMPTY);
  call(FUSE_RMDIR, d.nodeid, cstr("sub"));
  call(FUSE_UNLINK, d.nodeid, cstr("l"));
  call(FUSE_UNLINK, d.nodeid, cstr("hard"));
  call(FUSE_RMDIR, 1, cstr("d"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/d"));
  (void)sub;
  (void)fh;
}

// Descriptors this process has open (the listing's own is counted every
// time, so differences are exact).
std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// A fixture whose volume root can be made afresh, and a way to push every
// node not in use out of a small descriptor budget.
class FsDirBackendBudget : public FsDirBackend {
 protected:
  // A fresh root `name` served with `max_open` descriptors for nodes.
  void serve(const std::string& name, std::size_t max_open, bool file_handles) {
    root_ = base_ + "/" + name;
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    for (int i = 0; i < kChurn; ++i) {
      std::filesystem::create_directories(root_ + "/churn");
      host_write(root_ + "/churn/" + std::to_string(i), "x");
    }
    DirBackendOptions o;
    o.max_open_nodes = max_open;
    o.file_handles = file_handles;
    open_server(false, {}, o);
  }
  // Looks up more files than the budget holds: every other node not in use
  // gives up its descriptor.
  void churn() {
    auto dir = lookup(1, "churn");
    for (int i = 0; i < kChurn; ++i) lookup(dir.nodeid, std::to_string(i));
  }
  void release(std::uint64_t node, std::uint64_t fh) {
    fuse_release_in in{};
    in.fh = fh;
    call(FUSE_RELEASE, node, bytes_of(in));
  }
  std::string read_node(std::uint64_t node) {
    std::uint64_t fh = open(node, O_RDONLY);
    std::string data = read(node, fh, 0, 4096);
    release(node, fh);
    return data;
  }
  void rename(std::uint64_t from, const std::string& name, std::uint64_t to, const std::string& newname) {
    fuse_rename_in in{};
    in.newdir = to;
    call(FUSE_RENAME, from, cat(cat(bytes_of(in), cstr(name)), cstr(newname)));
  }
  ino_t host_ino(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_ino;
  }
  static constexpr int kChurn = 40;
};

// A guest may remember far more inodes than the server holds descriptors:
// with 16 descriptors, 1000 nodes are looked up, then stat'ed, read and
// written again, 50 directories made in them, and the process never holds
// more than the budget (the root is one of
// the 16 and already open when counting starts). Reopening works by file
// handle and, as for an unprivileged server, by name.
TEST_F(FsDirBackendBudget, ThousandsOfNodesShareSixteenDescriptors) {
  for (bool handles : {true, false}) {
    SCOPED_TRACE(handles ? "reopened by file handle" : "reopened by name");
    constexpr int kDirs = 500;
    serve(handles ? "by-handle" : "by-name", 16, handles);
    for (int i = 0; i < kDirs; ++i) {
      std::string d = root_ + "/d" + std::to_string(i);
      ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
      host_write(d + "/f", "file " + std::to_string(i));
    }
    const std::size_t bound = open_fds() + 15;
    std::vector<std::uint64_t> dirs, files;
    for (int i = 0; i < kDirs; ++i) {
      auto d = lookup(1, "d" + std::to_string(i));
      dirs.push_back(d.nodeid);
      files.push_back(lookup(d.nodeid, "f").nodeid);
    }
    EXPECT_LE(open_fds(), bound);
    for (int i = 0; i < kDirs; ++i) {
      std::string content = "file " + std::to_string(i);
      EXPECT_EQ(getattr(dirs[i]).mode & S_IFMT, static_cast<std::uint32_t>(S_IFDIR));
      EXPECT_EQ(getattr(files[i]).size, content.size());
      std::uint64_t fh = open(files[i], O_RDWR);
      EXPECT_EQ(read(files[i], fh, 0, 100), content);
      EXPECT_EQ(write(files[i], fh, content.size(), "!"), 1u);
      release(files[i], fh);
      if (i % 10 == 0) mkdir(dirs[i], "sub", 0755);  // in a directory closed long ago
      EXPECT_LE(open_fds(), bound) << "node " << i;
    }
    EXPECT_LE(open_fds(), bound);
    for (int i = 0; i < kDirs; ++i) {
      std::string d = root_ + "/d" + std::to_string(i);
      EXPECT_EQ(host_read(d + "/f"), "file " + std::to_string(i) + "!");
      EXPECT_EQ(std::filesystem::is_directory(d + "/sub"), i % 10 == 0);
      // Still the same nodes: a closed node is found again by its inode.
      EXPECT_EQ(lookup(1, "d" + std::to_string(i)).nodeid, dirs[i]);
      EXPECT_EQ(lookup(dirs[i], "f").nodeid, files[i]);
    }
    EXPECT_LE(open_fds(), bound);
  }
}

// A node that gave up its descriptor still names its file after the guest
// renames it (the server records where it went) and after the host renames
// its directory or the file itself inside the volume (by file handle; by
// name the old place is all the server knows, so the node is stale until the
// guest looks the new name up).
TEST_F(FsDirBackendBudget, ClosedNodesFollowRenamesInsideTheVolume) {
  for (bool handles : {true, false}) {
    SCOPED_TRACE(handles ? "reopened by file handle" : "reopened by name");
    serve(handles ? "by-handle" : "by-name", 8, handles);
    for (const char* d : {"a", "b", "c"}) ASSERT_EQ(::mkdir((root_ + "/" + d).c_str(), 0755), 0);
    host_write(root_ + "/a/f", "data");
    ASSERT_EQ(::symlink("../f", (root_ + "/a/l").c_str()), 0);
    auto a = lookup(1, "a");
    auto b = lookup(1, "b");
    auto f = lookup(a.nodeid, "f");
    auto l = lookup(a.nodeid, "l");
    churn();
    EXPECT_EQ(call(FUSE_READLINK, l.nodeid, {}), "../f");  // a symlink reopens as itself
    open(l.nodeid, O_RDONLY, ELOOP);
    rename(a.nodeid, "f", b.nodeid, "g");
    churn();
    EXPECT_EQ(getattr(f.nodeid).ino, host_ino(root_ + "/b/g"));
    EXPECT_EQ(read_node(f.nodeid), "data");

    ASSERT_EQ(::rename((root_ + "/b").c_str(), (root_ + "/b2").c_str()), 0);
    churn();
    if (handles) {
      EXPECT_EQ(getattr(b.nodeid).ino, host_ino(root_ + "/b2"));
      EXPECT_EQ(read_node(f.nodeid), "data");
    } else {
      call(FUSE_GETATTR, b.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
      call(FUSE_GETATTR, f.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
      // Looked up under its new name, the directory is the same node again,
      // and the file beneath it reopens through it.
      EXPECT_EQ(lookup(1, "b2").nodeid, b.nodeid);
      churn();
      EXPECT_EQ(read_node(f.nodeid), "data");
    }

    ASSERT_EQ(::rename((root_ + "/b2/g").c_str(), (root_ + "/c/h").c_str()), 0);
    churn();
    if (handles) {
      EXPECT_EQ(getattr(f.nodeid).ino, host_ino(root_ + "/c/h"));
      EXPECT_EQ(read_node(f.nodeid), "data");
    } else {
      call(FUSE_GETATTR, f.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
    }
  }
}

// A closed node whose file was deleted, or deleted and replaced by another
// file of the same name (which on ext4 may even get the same inode number),
// is ESTALE: never the other file. Looking the name up again gives a new node.
TEST_F(FsDirBackendBudget, ReplacedFilesAreStaleNeverTheOtherFile) {
  for (bool handles : {true, false}) {
    SCOPED_TRACE(handles ? "reopened by file handle" : "reopened by name");
    serve(handles ? "by-handle" : "by-name", 4, handles);
    host_write(root_ + "/f", "old");
    host_write(root_ + "/gone", "gone");
    ASSERT_EQ(::mkdir((root_ + "/d").c_str(), 0755), 0);
    auto f = lookup(1, "f");
    auto gone = lookup(1, "gone");
    auto d = lookup(1, "d");
    churn();
    ASSERT_EQ(::unlink((root_ + "/f").c_str()), 0);
    host_write(root_ + "/f", "new");
    ASSERT_EQ(::unlink((root_ + "/gone").c_str()), 0);
    ASSERT_EQ(::rmdir((root_ + "/d").c_str()), 0);
    ASSERT_EQ(::mkdir((root_ + "/d").c_str(), 0755), 0);
    call(FUSE_GETATTR, f.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
    open(f.nodeid, O_RDONLY, ESTALE);
    call(FUSE_GETATTR, gone.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
    call(FUSE_GETATTR, d.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
    lookup(d.nodeid, "x", ESTALE);
    auto again = lookup(1, "f");
    EXPECT_NE(again.nodeid, f.nodeid);
    EXPECT_EQ(read_node(again.nodeid), "new");
    EXPECT_NE(lookup(1, "d").nodeid, d.nodeid);
    call(FUSE_GETATTR, f.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
  }
}

// The host moving a closed node's file or directory out of the volume (to a
// sibling of the root) does not let a reopen follow it there: by handle the
// inode is found but is not beneath the root, by name it is not where it was.
TEST_F(FsDirBackendBudget, ReopensNeverLeaveTheRoot) {
  for (bool handles : {true, false}) {
    SCOPED_TRACE(handles ? "reopened by file handle" : "reopened by name");
    std::string name = handles ? "by-handle" : "by-name";
    serve(name, 4, handles);
    ASSERT_EQ(::mkdir((root_ + "/d").c_str(), 0755), 0);
    host_write(root_ + "/d/f", "inside");
    host_write(root_ + "/g", "inside too");
    auto d = lookup(1, "d");
    auto f = lookup(d.nodeid, "f");
    auto g = lookup(1, "g");
    churn();
    ASSERT_EQ(::rename((root_ + "/d").c_str(), (base_ + "/" + name + "-d").c_str()), 0);
    ASSERT_EQ(::rename((root_ + "/g").c_str(), (base_ + "/" + name + "-g").c_str()), 0);
    call(FUSE_GETATTR, d.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
    lookup(d.nodeid, "f", ESTALE);
    call(FUSE_GETATTR, f.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
    open(f.nodeid, O_RDONLY, ESTALE);
    call(FUSE_GETATTR, g.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
    open(g.nodeid, O_WRONLY, ESTALE);
    call(FUSE_SETXATTR, g.nodeid, setxattr_body("user.x", "1"), ESTALE);
    EXPECT_EQ(host_read(base_ + "/" + name + "-g"), "inside too");
    EXPECT_EQ(host_xattr(base_ + "/" + name + "-g", "user.x"), "<No data available>");
  }
}

// A node behind an open file or directory handle keeps its descriptor: with
// every descriptor of the budget held that way, a new name can still be
// looked up, but using it waits for a handle to close (ENFILE meanwhile).
TEST_F(FsDirBackendBudget, OpenHandlesKeepTheirDescriptors) {
  serve("root2", 4, true);  // the root and three more
  std::vector<std::uint64_t> nodes, fhs;
  for (const char* n : {"p0", "p1", "p2"}) {
    host_write(root_ + "/" + n, n);
    nodes.push_back(lookup(1, n).nodeid);
    fhs.push_back(open(nodes.back(), O_RDONLY));
  }
  host_write(root_ + "/q", "q");
  auto q = lookup(1, "q");
  EXPECT_NE(q.nodeid, 0u);
  call(FUSE_GETATTR, q.nodeid, bytes_of(fuse_getattr_in{}), ENFILE);
  EXPECT_EQ(read(nodes[1], fhs[1], 0, 10), "p1");
  EXPECT_EQ(getattr(nodes[2]).size, 2u);
  release(nodes[0], fhs[0]);
  EXPECT_EQ(getattr(q.nodeid).size, 1u);
  EXPECT_EQ(read_node(q.nodeid), "q");
  for (int i = 1; i < 3; ++i) release(nodes[i], fhs[i]);
}

// Reopening by name walks the recorded parents, so a directory the kernel
// forgot stays known while a node beneath it does: its file is still found,
// and a new lookup of the directory gives the same node back. Once the child
// goes too, so does the directory.
TEST_F(FsDirBackendBudget, ParentsStayKnownForTheirChildren) {
  serve("root3", 4, false);
  ASSERT_EQ(::mkdir((root_ + "/d").c_str(), 0755), 0);
  host_write(root_ + "/d/f", "deep");
  auto d = lookup(1, "d");
  auto f = lookup(d.nodeid, "f");
  call_noreply(FUSE_FORGET, d.nodeid, bytes_of(fuse_forget_in{1}));
  churn();
  EXPECT_EQ(read_node(f.nodeid), "deep");
  EXPECT_EQ(lookup(1, "d").nodeid, d.nodeid);
  call_noreply(FUSE_FORGET, d.nodeid, bytes_of(fuse_forget_in{1}));
  call_noreply(FUSE_FORGET, f.nodeid, bytes_of(fuse_forget_in{1}));
  call(FUSE_GETATTR, d.nodeid, bytes_of(fuse_getattr_in{}), ESTALE);
  EXPECT_NE(lookup(1, "d").nodeid, d.nodeid);
}

// Several workers at once, as the server's threads are: nodes are closed
// under some while others use them, and every answer is still the right
// file's. The budget covers what can be in use at once (the root, each
// worker's open handle and the node in its hands), so nothing is ENFILE.
TEST_F(FsDirBackendBudget, ConcurrentWorkersSeeTheirOwnFiles) {
  serve("root4", 16, true);
  constexpr int kFiles = 200;
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < kFiles; ++i) {
    host_write(root_ + "/f" + std::to_string(i), "content " + std::to_string(i));
    ids.push_back(lookup(1, "f" + std::to_string(i)).nodeid);
  }
  std::atomic<int> errors{0}, wrong{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      for (int k = 0; k < 1000; ++k) {
        int i = (t * 7919 + k * 31) % kFiles;
        std::string want = "content " + std::to_string(i);
        fuse_attr_out a{};
        if (backend_->getattr(ids[i], a) != 0) ++errors;
        else if (a.attr.size != want.size()) ++wrong;
        fuse_open_out o{};
        if (backend_->open(ids[i], O_RDONLY, o) != 0) {
          ++errors;
          continue;
        }
        std::vector<std::uint8_t> buf(64);
        if (backend_->read(ids[i], o.fh, 0, buf) != 0) ++errors;
        else if (std::string(buf.begin(), buf.end()) != want) ++wrong;
        backend_->release(ids[i], o.fh);
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  for (int i = 0; i < kFiles; ++i) EXPECT_EQ(read_node(ids[i]), "content " + std::to_string(i));
}

// Nodes themselves cost memory: past max_nodes new ones get ENFILE, and a
// forgotten node frees its place.
TEST_F(FsDirBackend, NodeCountIsCapped) {
  for (const char* d : {"a", "b", "c", "d"}) ASSERT_EQ(::mkdir((root_ + "/" + d).c_str(), 0755), 0);
  DirBackendOptions o;
  o.max_nodes = 3;  // the root and two more
  open_server(false, {}, o);
  auto a = lookup(1, "a");
  lookup(1, "b");
  EXPECT_EQ(lookup(1, "a").nodeid, a.nodeid);  // a known node costs nothing
  lookup(1, "c", ENFILE);
  call_noreply(FUSE_FORGET, a.nodeid, bytes_of(fuse_forget_in{2}));
  EXPECT_NE(lookup(1, "c").nodeid, 0u);
  lookup(1, "d", ENFILE);
}

// Open files and directories are capped too: past max_open_handles an open
// gets ENFILE, so a guest holding files open cannot take the server's last
// descriptors; a release makes room again.
TEST_F(FsDirBackendBudget, OpenHandleCountIsCapped) {
  root_ = base_ + "/handles";
  ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
  for (const char* n : {"a", "b", "c"}) host_write(root_ + "/" + n, n);
  ASSERT_EQ(::mkdir((root_ + "/d").c_str(), 0755), 0);
  DirBackendOptions o;
  o.max_open_handles = 2;
  open_server(false, {}, o);
  auto a = lookup(1, "a").nodeid, b = lookup(1, "b").nodeid, c = lookup(1, "c").nodeid;
  auto d = lookup(1, "d").nodeid;
  auto fa = open(a, O_RDONLY);
  auto fb = open(b, O_RDWR);
  open(c, O_RDONLY, ENFILE);
  call(FUSE_OPENDIR, d, bytes_of(fuse_open_in{}), ENFILE);
  release(a, fa);
  auto fc = open(c, O_RDONLY);
  EXPECT_EQ(read(c, fc, 0, 10), "c");
  release(b, fb);
  release(c, fc);
}

TEST_F(FsDirBackend, MknodDevicesAreRegularHostFiles) {
  uid_ = 0;
  fuse_mknod_in in{};
  in.mode = S_IFCHR | 0666;
  in.rdev = encode_rdev(1, 3);
  auto dev = as<fuse_entry_out>(call(FUSE_MKNOD, 1, cat(bytes_of(in), cstr("null"))));
  EXPECT_EQ(dev.attr.mode, S_IFCHR | 0666u);
  EXPECT_EQ(dev.attr.rdev, (1u << 8) | 3u);
  auto a = getattr(dev.nodeid);
  EXPECT_EQ(a.mode, S_IFCHR | 0666u);
  EXPECT_EQ(a.rdev, 259u);
  struct stat st {};
  ASSERT_EQ(::lstat((root_ + "/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_rdev, 0u);
  EXPECT_EQ(host_xattr(root_ + "/null", "user.moat.stat"),
            encode_guest_stat(GuestStat{0, 0, S_IFCHR | 0666, 259}));
  in.mode = S_IFIFO | 0600;
  in.rdev = 0;
  auto fifo = as<fuse_entry_out>(call(FUSE_MKNOD, 1, cat(bytes_of(in), cstr("fifo"))));
  EXPECT_EQ(fifo.attr.mode, S_IFIFO | 0600u);
  in.mode = S_IFREG | 0644;
  auto reg = as<fuse_entry_out>(call(FUSE_MKNOD, 1, cat(bytes_of(in), cstr("reg"))));
  EXPECT_EQ(reg.attr.mode, S_IFREG | 0644u);
  in.mode = S_IFDIR | 0755;
  call(FUSE_MKNOD, 1, cat(bytes_of(in), cstr("dir")), EINVAL);
  // Plain READDIR reports the guest's types too.
  auto names = list(1, false, 4096);
  EXPECT_EQ(names["null"].type, static_cast<std::uint32_t>(DT_CHR));
  EXPECT_EQ(names["fifo"].type, static_cast<std::uint32_t>(DT_FIFO));
  EXPECT_EQ(names["reg"].type, static_cast<std::uint32_t>(DT_REG));
  auto plus = list(1, true, 4096);
  EXPECT_EQ(plus["null"].type, static_cast<std::uint32_t>(DT_CHR));
  EXPECT_EQ(plus["null"].entry.attr.rdev, 259u);
}

// The guest's modes live in the xattr; the host's never become group- or
// other-writable because of the guest (nor setuid, setgid or sticky).
TEST_F(FsDirBackend, GuestModesNeverOpenHostFilesToOthers) {
  mode_t old_umask = ::umask(0);  // as a server started with umask 0 would create them
  auto d = mkdir(1, "shared", 01777);
  EXPECT_EQ(d.attr.mode, S_IFDIR | 01777u);
  struct stat st {};
  ASSERT_EQ(::stat((root_ + "/shared").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  auto [f, fh] = create(1, "f", 0666);
  EXPECT_EQ(f.attr.mode, S_IFREG | 0666u);
  ASSERT_EQ(::stat((root_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  fuse_setattr_in sa{};
  sa.valid = FATTR_MODE;
  sa.mode = 06777;
  EXPECT_EQ(setattr(f.nodeid, sa).mode, S_IFREG | 06777u);
  ASSERT_EQ(::stat((root_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(setattr(d.nodeid, sa).mode, S_IFDIR | 06777u);
  ASSERT_EQ(::stat((root_ + "/shared").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ::umask(old_umask);
}

TEST_F(FsDirBackend, ChownAndChmodLiveInTheXattr) {
  auto [f, fh] = create(1, "f", 0644);
  fuse_setattr_in sa{};
  sa.valid = FATTR_UID | FATTR_GID;
  sa.uid = 1000;
  sa.gid = 1000;
  auto a = setattr(f.nodeid, sa);
  EXPECT_EQ(a.uid, 1000u);
  EXPECT_EQ(a.gid, 1000u);
  struct stat st {};
  ASSERT_EQ(::stat((root_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(host_xattr(root_ + "/f", "user.moat.stat"),
            encode_guest_stat(GuestStat{1000, 1000, S_IFREG | 0644, 0}));
  sa = {};
  sa.valid = FATTR_MODE;
  sa.mode = 04711;
  a = setattr(f.nodeid, sa);
  EXPECT_EQ(a.mode, S_IFREG | 04711u);
  ASSERT_EQ(::stat((root_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 0711u);  // no setuid on the host; owner rw kept
  sa.mode = 0;
  EXPECT_EQ(setattr(f.nodeid, sa).mode, static_cast<std::uint32_t>(S_IFREG));
  ASSERT_EQ(::stat((root_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 0600u);
  // Symlinks: the host's owner; chown succeeds without effect.
  ASSERT_EQ(::symlink("f", (root_ + "/l").c_str()), 0);
  auto l = lookup(1, "l");
  sa = {};
  sa.valid = FATTR_UID;
  sa.uid = 1234;
  EXPECT_EQ(setattr(l.nodeid, sa).uid, ::geteuid());
  // A setgid directory passes its group on, and its bit to subdirectories.
  sa = {};
  sa.valid = FATTR_MODE | FATTR_GID;
  auto d = mkdir(1, "shared", 0775);
  sa.mode = 02775;
  sa.gid = 50;
  EXPECT_EQ(setattr(d.nodeid, sa).mode, S_IFDIR | 02775u);
  uid_ = 1000;
  gid_ = 1000;
  auto [g, gfh] = create(d.nodeid, "g", 0644);
  EXPECT_EQ(g.attr.uid, 1000u);
  EXPECT_EQ(g.attr.gid, 50u);
  auto sub = mkdir(d.nodeid, "sub", 0755);
  EXPECT_EQ(sub.attr.gid, 50u);
  EXPECT_EQ(sub.attr.mode, S_IFDIR | 02755u);
  (void)fh;
  (void)gfh;
}

TEST_F(FsDirBackend, MalformedStatXattrFallsBackToHostStat) {
  host_write(root_ + "/f", "data");
  ASSERT_EQ(::chmod((root_ + "/f").c_str(), 0604), 0);
  ::mkdir((root_ + "/d").c_str(), 0705);
  auto good = encode_guest_stat(GuestStat{5, 6, S_IFREG | 0777, 0});
  auto set = [&](const std::string& path, const std::string& v) {
    ASSERT_EQ(::setxattr(path.c_str(), "user.moat.stat", v.data(), v.size(), 0), 0);
  };
  set(root_ + "/f", good);
  EXPECT_EQ(getattr(lookup(1, "f").nodeid).uid, 5u);
  std::string bad_version = good;
  bad_version[0] = 2;
  std::string bad_reserved = good;
  bad_reserved[2] = 1;
  std::string bad_bits = encode_guest_stat(GuestStat{5, 6, S_IFREG | 0170000, 0});
  std::string dir_on_file = encode_guest_stat(GuestStat{5, 6, S_IFDIR | 0755, 0});
  std::string rdev_on_file = encode_guest_stat(GuestStat{5, 6, S_IFREG | 0755, 7});
  std::string minus_one = encode_guest_stat(GuestStat{UINT32_MAX, 6, S_IFREG | 0755, 0});
  for (const std::string& v : std::vector<std::string>{good.substr(0, 19), good + "x", bad_version, bad_reserved, bad_bits,
                               dir_on_file, rdev_on_file, minus_one, std::string(4000, '\1')}) {
    set(root_ + "/f", v);
    auto a = getattr(lookup(1, "f").nodeid);
    EXPECT_EQ(a.uid, ::geteuid());
    EXPECT_EQ(a.mode, S_IFREG | 0604u);
  }
  set(root_ + "/d", encode_guest_stat(GuestStat{5, 6, S_IFCHR | 0755, 1}));
  EXPECT_EQ(getattr(lookup(1, "d").nodeid).mode, S_IFDIR | 0705u);
}

TEST_F(FsDirBackend, PrivateXattrsAreHiddenAndNamespacesMapped) {
  auto [f, fh] = create(1, "f", 0644);
  getxattr(f.nodeid, "user.moat.stat", ENODATA);
  getxattr(f.nodeid, "user.moat.x.trusted.a", ENODATA);
  call(FUSE_SETXATTR, f.nodeid, setxattr_body("user.moat.stat", std::string(20, '\0')), EPERM);
  call(FUSE_SETXATTR, f.nodeid, setxattr_body("user.moat.anything", "v"), EPERM);
  call(FUSE_REMOVEXATTR, f.nodeid, cstr("user.moat.stat"), EPERM);
  EXPECT_EQ(listxattr(f.nodeid), std::set<std::string>{});
  EXPECT_EQ(host_xattr(root_ + "/f", "user.moat.stat").size(), kStatXattrSize);

  call(FUSE_SETXATTR, f.nodeid, setxattr_body("user.color", "blue"));
  call(FUSE_SETXATTR, f.nodeid, setxattr_body("trusted.overlay.opaque", "y"));
  call(FUSE_SETXATTR, f.nodeid, setxattr_body("security.capability", "caps"));
  call(FUSE_SETXATTR, f.nodeid, setxattr_body("system.posix_acl_access", "x"), EOPNOTSUPP);
  EXPECT_EQ(host_xattr(root_ + "/f", "user.color"), "blue");
  EXPECT_EQ(host_xattr(root_ + "/f", "user.moat.x.trusted.overlay.opaque"), "y");
  EXPECT_EQ(host_xattr(root_ + "/f", "user.moat.x.security.capability"), "caps");
  EXPECT_EQ(getxattr(f.nodeid, "user.color"), "blue");
  EXPECT_EQ(getxattr(f.nodeid, "trusted.overlay.opaque"), "y");
  EXPECT_EQ(listxattr(f.nodeid), (std::set<std::string>{"user.color", "trusted.overlay.opaque",
                                                        "security.capability"}));
  call(FUSE_REMOVEXATTR, f.nodeid, cstr("trusted.overlay.opaque"));
  getxattr(f.nodeid, "trusted.overlay.opaque", ENODATA);
  // A host xattr that looks like a mapped name of another namespace stays hidden.
  ASSERT_EQ(::setxattr((root_ + "/f").c_str(), "user.moat.x.user.z", "1", 1, 0), 0);
  EXPECT_EQ(listxattr(f.nodeid), (std::set<std::string>{"user.color", "security.capability"}));
  // XATTR_CREATE is honoured.
  auto body = setxattr_body("user.color", "red");
  std::uint32_t create_flag = XATTR_CREATE;
  std::memcpy(body.data() + 4, &create_flag, 4);
  call(FUSE_SETXATTR, f.nodeid, body, EEXIST);
  (void)fh;
}

TEST_F(FsDirBackend, ReadOnlyRefusesEveryChange) {
  host_write(root_ + "/f", "content");
  ::mkdir((root_ + "/d").c_str(), 0755);
  open_server(true);
  auto f = lookup(1, "f");
  auto d = lookup(1, "d");
  std::uint64_t fh = open(f.nodeid, O_RDONLY);
  EXPECT_EQ(read(f.nodeid, fh, 0, 100), "content");
  open(f.nodeid, O_RDWR, EROFS);
  open(f.nodeid, O_WRONLY, EROFS);
  open(f.nodeid, O_RDONLY | O_TRUNC, EROFS);
  fuse_write_in wi{};
  wi.fh = fh;
  wi.size = 1;
  call(FUSE_WRITE, f.nodeid, cat(bytes_of(wi), raw("x")), EROFS);
  fuse_create_in ci{};
  ci.mode = S_IFREG | 0644;
  call(FUSE_CREATE, 1, cat(bytes_of(ci), cstr("new")), EROFS);
  fuse_mknod_in mn{};
  mn.mode = S_IFREG | 0644;
  call(FUSE_MKNOD, 1, cat(bytes_of(mn), cstr("new")), EROFS);
  call(FUSE_MKDIR, 1, cat(bytes_of(fuse_mkdir_in{}), cstr("new")), EROFS);
  call(FUSE_SYMLINK, 1, cat(cstr("new"), cstr("f")), EROFS);
  fuse_link_in li{};
  li.oldnodeid = f.nodeid;
  call(FUSE_LINK, 1, cat(bytes_of(li), cstr("new")), EROFS);
  call(FUSE_UNLINK, 1, cstr("f"), EROFS);
  call(FUSE_RMDIR, 1, cstr("d"), EROFS);
  fuse_rename_in rn{};
  rn.newdir = 1;
  call(FUSE_RENAME, 1, cat(cat(bytes_of(rn), cstr("f")), cstr("g")), EROFS);
  fuse_rename2_in rn2{};
  rn2.newdir = 1;
  call(FUSE_RENAME2, 1, cat(cat(bytes_of(rn2), cstr("f")), cstr("g")), EROFS);
  fuse_setattr_in sa{};
  sa.valid = FATTR_MODE;
  sa.mode = 0777;
  call(FUSE_SETATTR, f.nodeid, bytes_of(sa), EROFS);
  call(FUSE_SETXATTR, f.nodeid, setxattr_body("user.a", "b"), EROFS);
  call(FUSE_REMOVEXATTR, f.nodeid, cstr("user.a"), EROFS);
  fuse_fallocate_in fa{};
  fa.fh = fh;
  fa.length = 10;
  call(FUSE_FALLOCATE, f.nodeid, bytes_of(fa), EROFS);
  fuse_copy_file_range_in cr{};
  cr.fh_in = fh;
  cr.nodeid_out = f.nodeid;
  cr.fh_out = fh;
  cr.len = 1;
  call(FUSE_COPY_FILE_RANGE, f.nodeid, bytes_of(cr), EROFS);
  call(FUSE_TMPFILE, 1, cat(bytes_of(ci), cstr("t")), EROFS);
  EXPECT_EQ(host_read(root_ + "/f"), "content");
  EXPECT_TRUE(std::filesystem::is_directory(root_ + "/d"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/new"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/g"));
  (void)d;
}

TEST_F(FsDirBackend, SymlinksNeverLeadOutOfTheRoot) {
  ASSERT_EQ(::symlink("/", (root_ + "/escape").c_str()), 0);
  ASSERT_EQ(::symlink("..", (root_ + "/up").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/hostname", (root_ + "/host").c_str()), 0);
  host_write(base_ + "/outside", "secret");
  for (const char* name : {"escape", "up", "host"}) {
    auto l = lookup(1, name);
    EXPECT_EQ(l.attr.mode & S_IFMT, static_cast<std::uint32_t>(S_IFLNK)) << name;
    // Nothing resolves through it or opens it.
    lookup(l.nodeid, "etc", ENOTDIR);
    lookup(l.nodeid, "outside", ENOTDIR);
    open(l.nodeid, O_RDONLY, ELOOP);
    fuse_open_in oi{};
    call(FUSE_OPENDIR, l.nodeid, bytes_of(oi), ENOTDIR);
    fuse_create_in ci{};
    ci.mode = S_IFREG | 0644;
    call(FUSE_CREATE, l.nodeid, cat(bytes_of(ci), cstr("pwned")), ENOTDIR);
    call(FUSE_MKDIR, l.nodeid, cat(bytes_of(fuse_mkdir_in{}), cstr("pwned")), ENOTDIR);
    fuse_setattr_in sa{};
    sa.valid = FATTR_SIZE;
    call(FUSE_SETATTR, l.nodeid, bytes_of(sa), EINVAL);
    getxattr(l.nodeid, "user.x", ENODATA);
  }
  EXPECT_EQ(call(FUSE_READLINK, lookup(1, "escape").nodeid, {}), "/");
  EXPECT_EQ(call(FUSE_READLINK, lookup(1, "up").nodeid, {}), "..");
  // A CREATE over an existing symlink opens nothing through it.
  fuse_create_in ci{};
  ci.flags = O_RDWR;
  ci.mode = S_IFREG | 0644;
  call(FUSE_CREATE, 1, cat(bytes_of(ci), cstr("host")), ELOOP);
  EXPECT_EQ(host_read(base_ + "/outside"), "secret");
  EXPECT_FALSE(std::filesystem::exists("/pwned"));
  // Names that are not one component are rejected by the decoder.
  for (std::string name : {"..", ".", "a/b", "/", "../outside"}) {
    lookup(1, name, EINVAL);
    call(FUSE_MKDIR, 1, cat(bytes_of(fuse_mkdir_in{}), cstr(name)), EINVAL);
    call(FUSE_CREATE, 1, cat(bytes_of(ci), cstr(name)), EINVAL);
    call(FUSE_SYMLINK, 1, cat(cstr(name), cstr("x")), EINVAL);
    call(FUSE_UNLINK, 1, cstr(name), EINVAL);
    fuse_rename_in rn{};
    rn.newdir = 1;
    call(FUSE_RENAME, 1, cat(cat(bytes_of(rn), cstr("escape")), cstr(name)), EINVAL);
  }
  // Unknown node ids are stale, not the root.
  call(FUSE_GETATTR, 999999, bytes_of(fuse_getattr_in{}), ESTALE);
  lookup(999999, "x", ESTALE);
}

TEST_F(FsDirBackend, HostSpecialFilesAreNeverOpened) {
  // A FIFO planted on the host: opening it for writing would block a worker.
  ASSERT_EQ(::mkfifo((root_ + "/pipe").c_str(), 0666), 0);
  fuse_create_in ci{};
  ci.flags = O_WRONLY;
  ci.mode = S_IFREG | 0644;
  call(FUSE_CREATE, 1, cat(bytes_of(ci), cstr("pipe")), EACCES);
  auto p = lookup(1, "pipe");
  EXPECT_EQ(p.attr.mode & S_IFMT, static_cast<std::uint32_t>(S_IFIFO));
  open(p.nodeid, O_WRONLY, EACCES);
  fuse_setattr_in sa{};
  sa.valid = FATTR_SIZE;
  call(FUSE_SETATTR, p.nodeid, bytes_of(sa), EINVAL);
  ::mkdir((root_ + "/d").c_str(), 0755);
  call(FUSE_CREATE, 1, cat(bytes_of(ci), cstr("d")), EISDIR);
}

TEST_F(FsDirBackend, Rename2Flags) {
  host_write(root_ + "/a", "A");
  host_write(root_ + "/b", "B");
  fuse_rename2_in in{};
  in.newdir = 1;
  in.flags = RENAME_NOREPLACE;
  call(FUSE_RENAME2, 1, cat(cat(bytes_of(in), cstr("a")), cstr("b")), EEXIST);
  in.flags = RENAME_EXCHANGE;
  call(FUSE_RENAME2, 1, cat(cat(bytes_of(in), cstr("a")), cstr("b")));
  EXPECT_EQ(host_read(root_ + "/a"), "B");
  EXPECT_EQ(host_read(root_ + "/b"), "A");
  in.flags = RENAME_WHITEOUT;
  call(FUSE_RENAME2, 1, cat(cat(bytes_of(in), cstr("a")), cstr("c")), EINVAL);
  in.flags = RENAME_NOREPLACE;
  call(FUSE_RENAME2, 1, cat(cat(bytes_of(in), cstr("a")), cstr("c")));
  EXPECT_EQ(host_read(root_ + "/c"), "B");
}

TEST_F(FsDirBackend, ReaddirOffsetsAreStableInSmallChunks) {
  for (int i = 0; i < 300; ++i) host_write(root_ + "/entry-" + std::to_string(i), "x");
  ::mkdir((root_ + "/dir").c_str(), 0755);
  for (bool plus : {false, true}) {
    for (std::uint32_t size : {200u, 4096u, 1u << 20}) {
      auto entries = list(1, plus, size);
      ASSERT_EQ(entries.size(), 303u) << plus << " " << size;
      EXPECT_TRUE(entries.count(".") && entries.count(".."));
      EXPECT_EQ(entries["dir"].type, static_cast<std::uint32_t>(DT_DIR));
      if (plus) {
        EXPECT_EQ(entries["entry-7"].entry.nodeid, lookup(1, "entry-7").nodeid);
        EXPECT_EQ(entries["entry-7"].entry.attr.size, 1u);
        EXPECT_EQ(entries["."].entry.nodeid, 0u);
      }
    }
  }
}

TEST_F(FsDirBackend, FallocateLseekCopyFileRangeStatfs) {
  auto [f, fh] = create(1, "f", 0644);
  fuse_fallocate_in fa{};
  fa.fh = fh;
  fa.offset = 0;
  fa.length = 1 << 20;
  call(FUSE_FALLOCATE, f.nodeid, bytes_of(fa));
  EXPECT_EQ(getattr(f.nodeid).size, 1u << 20);
  // Data at 0 and at 3 MiB, a hole between (after punching the preallocation).
  fa.mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  call(FUSE_FALLOCATE, f.nodeid, bytes_of(fa));
  write(f.nodeid, fh, 0, std::string(4096, 'a'));
  write(f.nodeid, fh, 3 << 20, std::string(4096, 'b'));
  fuse_lseek_in ls{};
  ls.fh = fh;
  ls.offset = 0;
  ls.whence = SEEK_HOLE;
  EXPECT_EQ(as<fuse_lseek_out>(call(FUSE_LSEEK, f.nodeid, bytes_of(ls))).offset, 4096u);
  ls.offset = 8192;
  ls.whence = SEEK_DATA;
  EXPECT_EQ(as<fuse_lseek_out>(call(FUSE_LSEEK, f.nodeid, bytes_of(ls))).offset, 3u << 20);
  ls.offset = 4u << 20;
  call(FUSE_LSEEK, f.nodeid, bytes_of(ls), ENXIO);

  auto [g, gfh] = create(1, "g", 0644);
  fuse_copy_file_range_in cr{};
  cr.fh_in = fh;
  cr.off_in = 3 << 20;
  cr.nodeid_out = g.nodeid;
  cr.fh_out = gfh;
  cr.off_out = 10;
  cr.len = 1ull << 40;  // capped, reported short
  EXPECT_EQ(as<fuse_write_out>(call(FUSE_COPY_FILE_RANGE, f.nodeid, bytes_of(cr))).size, 4096u);
  EXPECT_EQ(host_read(root_ + "/g"), std::string(10, '\0') + std::string(4096, 'b'));
  cr.nodeid_out = f.nodeid;  // fh_out is not f's
  call(FUSE_COPY_FILE_RANGE, f.nodeid, bytes_of(cr), EBADF);

  auto st = as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}));
  EXPECT_GT(st.st.blocks, 0u);
  EXPECT_EQ(st.st.namelen, 255u);
  fuse_fsync_in fs{};
  fuse_open_in oi{};
  fs.fh = as<fuse_open_out>(call(FUSE_OPENDIR, 1, bytes_of(oi))).fh;
  call(FUSE_FSYNCDIR, 1, bytes_of(fs));
  call(FUSE_SYNCFS, 1, bytes_of(fuse_syncfs_in{}));
  fuse_access_in ai{};
  call(FUSE_ACCESS, f.nodeid, bytes_of(ai));
  call(FUSE_ACCESS, 424242, bytes_of(ai), ESTALE);
}

// Free space as STATFS reports it, in bytes.
std::uint64_t free_bytes(const fuse_statfs_out& st) { return st.st.bavail * st.st.frsize; }

TEST_F(FsDirBackend, ASizeLimitGivesEnospcAndStatfsShowsIt) {
  host_write(root_ + "/old", std::string(10000, 'o'));  // counts 12288
  open_server(false, {}, limited(65536));
  auto st = as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}));
  EXPECT_EQ(st.st.blocks * st.st.frsize, 65536u);
  EXPECT_EQ(free_bytes(st), 65536u - 12288u);

  auto [f, fh] = create(1, "f", 0644);  // 4096
  EXPECT_EQ(write(f.nodeid, fh, 0, std::string(40000, 'a')), 40000u);  // now 40960: 53248 used
  // 12288 left: the write is cut where the limit is, the next one refused.
  EXPECT_EQ(write(f.nodeid, fh, 40000, std::string(20000, 'b')), 13248u);
  EXPECT_EQ(getattr(f.nodeid).size, 53248u);
  fuse_write_in wi{};
  wi.fh = fh;
  wi.offset = 53248;
  wi.size = 1;
  call(FUSE_WRITE, f.nodeid, cat(bytes_of(wi), raw("c")), ENOSPC);
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 0u);
  // Overwriting what is there needs no room.
  EXPECT_EQ(write(f.nodeid, fh, 0, std::string(4096, 'z')), 4096u);
  // Nothing new fits: no entry, no growth by truncate or fallocate.
  fuse_mkdir_in mi{};
  mi.mode = 0755;
  call(FUSE_MKDIR, 1, cat(bytes_of(mi), cstr("d")), ENOSPC);
  fuse_create_in ci{};
  ci.flags = O_RDWR;
  ci.mode = S_IFREG | 0644;
  call(FUSE_CREATE, 1, cat(bytes_of(ci), cstr("g")), ENOSPC);
  call(FUSE_SYMLINK, 1, cat(cstr("l"), cstr("target")), ENOSPC);
  fuse_setattr_in grow{};
  grow.valid = FATTR_SIZE;
  grow.size = 1 << 20;
  call(FUSE_SETATTR, f.nodeid, bytes_of(grow), ENOSPC);
  fuse_fallocate_in fa{};
  fa.fh = fh;
  fa.length = 1 << 20;
  call(FUSE_FALLOCATE, f.nodeid, bytes_of(fa), ENOSPC);
  fa.mode = FALLOC_FL_KEEP_SIZE;  // blocks past the end, no size to count
  call(FUSE_FALLOCATE, f.nodeid, bytes_of(fa), EOPNOTSUPP);
  EXPECT_EQ(host_read(root_ + "/f").size(), 53248u);

  // Removing and shrinking give the room back.
  call(FUSE_UNLINK, 1, cstr("old"));
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 12288u);
  fuse_setattr_in shrink{};
  shrink.valid = FATTR_SIZE;
  shrink.size = 8192;
  setattr(f.nodeid, shrink);
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 65536u - 8192u);
  mkdir(1, "d", 0755);
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 65536u - 12288u);
  call(FUSE_RMDIR, 1, cstr("d"));
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 65536u - 8192u);
}

TEST_F(FsDirBackend, AnUnlinkedFileCountsUntilItsLastClose) {
  open_server(false, {}, limited(65536));
  auto [f, fh] = create(1, "f", 0644);
  EXPECT_EQ(write(f.nodeid, fh, 0, std::string(32768, 'a')), 32768u);
  call(FUSE_UNLINK, 1, cstr("f"));
  // Still open: the host still holds its data.
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 32768u);
  EXPECT_EQ(write(f.nodeid, fh, 32768, std::string(40000, 'b')), 32768u);  // cut at the limit
  std::uint64_t again = open(f.nodeid, O_RDWR);  // open by node id while it still counts
  fuse_release_in rel{};
  rel.fh = fh;
  call(FUSE_RELEASE, f.nodeid, bytes_of(rel));
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 0u);
  rel.fh = again;
  call(FUSE_RELEASE, f.nodeid, bytes_of(rel));
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 65536u);
  // Its cost is gone, so it may not be opened again to hold data uncounted.
  open(f.nodeid, O_RDWR, ESTALE);
}

TEST_F(FsDirBackend, RenameOverAFileFreesIt) {
  host_write(root_ + "/a", std::string(8192, 'a'));
  host_write(root_ + "/b", std::string(20000, 'b'));
  open_server(false, {}, limited(65536));
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 65536u - 8192u - 20480u);
  fuse_rename_in rn{};
  rn.newdir = 1;
  call(FUSE_RENAME, 1, cat(cat(bytes_of(rn), cstr("a")), cstr("b")));
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 65536u - 8192u);
}

TEST_F(FsDirBackend, HardLinksCountAsEntriesAndTheDataOnce) {
  open_server(false, {}, limited(16384));
  auto [f, fh] = create(1, "f", 0644);
  EXPECT_EQ(write(f.nodeid, fh, 0, std::string(8192, 'a')), 8192u);
  fuse_link_in li{};
  li.oldnodeid = f.nodeid;
  call(FUSE_LINK, 1, cat(bytes_of(li), cstr("g")));
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 16384u - 8192u - 4096u);
  call(FUSE_LINK, 1, cat(bytes_of(li), cstr("h")));
  call(FUSE_LINK, 1, cat(bytes_of(li), cstr("i")), ENOSPC);
  call(FUSE_UNLINK, 1, cstr("f"));  // one name of three: the data stays
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 4096u);
  call(FUSE_UNLINK, 1, cstr("g"));
  fuse_release_in rel{};
  rel.fh = fh;
  call(FUSE_RELEASE, f.nodeid, bytes_of(rel));
  call(FUSE_UNLINK, 1, cstr("h"));  // the last name of a closed file
  EXPECT_EQ(free_bytes(as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}))), 16384u);
}

TEST(FsVolumeQuota, MeasuresDataOnceNamesEachAndNeverFollowsSymlinks) {
  char tmpl[] = "/tmp/moat-quota-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string root = tmpl;
  host_write(root + "/a", std::string(5000, 'a'));   // 8192
  ASSERT_EQ(::link((root + "/a").c_str(), (root + "/a2").c_str()), 0);  // a name more: 4096
  ASSERT_EQ(::mkdir((root + "/d").c_str(), 0755), 0);                 // 4096
  host_write(root + "/d/empty", "");                                  // 4096
  ASSERT_EQ(::symlink("/usr", (root + "/d/usr").c_str()), 0);         // 4096, not followed
  auto usage = VolumeQuota::measure(root);
  ASSERT_TRUE(usage.ok()) << usage.error().message;
  EXPECT_EQ(*usage, 8192u + 4096u + 4096u + 4096u + 4096u);
  EXPECT_EQ(VolumeQuota::file_cost(0), 4096u);
  EXPECT_EQ(VolumeQuota::file_cost(4097), 8192u);
  EXPECT_EQ(VolumeQuota::file_cost(UINT64_MAX), UINT64_MAX / 4096 * 4096);
  std::filesystem::remove_all(root);
}

TEST_F(FsDirBackend, WriteSideDecoderChecksLengths) {
  auto [f, fh] = create(1, "f", 0644);
  fuse_write_in wi{};
  wi.fh = fh;
  wi.size = 5;
  call(FUSE_WRITE, f.nodeid, cat(bytes_of(wi), raw("abcd")), EINVAL);     // short
  call(FUSE_WRITE, f.nodeid, cat(bytes_of(wi), raw("abcdef")), EINVAL);   // long
  wi.size = kFuseMaxWrite + 1;
  call(FUSE_WRITE, f.nodeid, cat(bytes_of(wi), Bytes(kFuseMaxWrite + 1)), EINVAL);
  call(FUSE_WRITE, f.nodeid, Bytes(39), EINVAL);
  auto body = setxattr_body("user.a", "value");
  body.pop_back();
  call(FUSE_SETXATTR, f.nodeid, body, EINVAL);
  call(FUSE_SETXATTR, f.nodeid, Bytes(7), EINVAL);
  call(FUSE_SYMLINK, 1, cat(cstr("l"), cstr(std::string(4096, 't'))), EINVAL);
  call(FUSE_SYMLINK, 1, cstr("l"), EINVAL);  // no target
  call(FUSE_SYMLINK, 1, cat(cstr("l"), cstr(std::string(4095, 't'))));
  fuse_rename_in rn{};
  call(FUSE_RENAME, 1, cat(bytes_of(rn), cstr("f")), EINVAL);  // no new name
  call(FUSE_MKNOD, 1, cat(Bytes(15), cstr("x")), EINVAL);
  call(FUSE_SETATTR, f.nodeid, Bytes(87), EINVAL);
  call(FUSE_COPY_FILE_RANGE, f.nodeid, Bytes(55), EINVAL);
  call(FUSE_FALLOCATE, f.nodeid, Bytes(31), EINVAL);
  call(FUSE_LINK, 1, bytes_of(fuse_link_in{}), EINVAL);  // no name
}

}  // namespace
}  // namespace moat::fs
