// The FUSE core without a kernel: crafted request bytes go through the
// decoder and the dispatcher to the EROFS backend, replies are checked byte
// for byte.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../image/erofs_check.h"
#include "fs/erofs_backend.h"
#include "fs/fuse_request.h"
#include "fs/fuse_server.h"
#include "image/erofs/fs_tree.h"
#include "image/erofs/spool.h"

namespace moat::fs {
namespace {

using image::FileType;

std::vector<std::uint8_t> bytes_of(const void* p, std::size_t n) {
  auto* b = static_cast<const std::uint8_t*>(p);
  return {b, b + n};
}

template <typename T>
std::vector<std::uint8_t> bytes_of(const T& v) {
  return bytes_of(&v, sizeof v);
}

std::vector<std::uint8_t> cstr(const std::string& s) {
  std::vector<std::uint8_t> out(s.begin(), s.end());
  out.push_back(0);
  return out;
}

std::vector<std::uint8_t> cat(std::vector<std::uint8_t> a, const std::vector<std::uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<std::uint8_t> message(std::uint32_t opcode, std::uint64_t nodeid,
                                  const std::vector<std::uint8_t>& body, std::uint64_t unique = 7) {
  fuse_in_header h{};
  h.len = static_cast<std::uint32_t>(sizeof h + body.size());
  h.opcode = opcode;
  h.unique = unique;
  h.nodeid = nodeid;
  return cat(bytes_of(h), body);
}

fuse_init_in init_in(std::uint32_t major = 7, std::uint32_t minor = 38, std::uint32_t flags = 0) {
  fuse_init_in in{};
  in.major = major;
  in.minor = minor;
  in.max_readahead = 128 * 1024;
  in.flags = flags;
  return in;
}

TEST(FsFuseRequest, RejectsMalformedMessages) {
  EXPECT_FALSE(decode_request({}).ok());
  auto m = message(FUSE_GETATTR, 1, bytes_of(fuse_getattr_in{}));
  EXPECT_TRUE(decode_request(m).ok());
  // Length field disagreeing with the bytes received, both ways.
  auto longer = m;
  longer.push_back(0);
  EXPECT_EQ(decode_request(longer).error().code, EINVAL);
  EXPECT_EQ(decode_request(std::span(m).first(m.size() - 1)).error().code, EINVAL);
  // Bodies shorter than the opcode's structure.
  EXPECT_EQ(decode_request(message(FUSE_GETATTR, 1, {1, 2, 3})).error().code, EINVAL);
  EXPECT_EQ(decode_request(message(FUSE_READ, 1, std::vector<std::uint8_t>(39))).error().code, EINVAL);
  EXPECT_EQ(decode_request(message(FUSE_INIT, 0, std::vector<std::uint8_t>(15))).error().code, EINVAL);
  // Names: NUL-terminated, 1..255 bytes.
  EXPECT_EQ(decode_request(message(FUSE_LOOKUP, 1, {'a', 'b'})).error().code, EINVAL);
  EXPECT_EQ(decode_request(message(FUSE_LOOKUP, 1, {0})).error().code, EINVAL);
  EXPECT_EQ(decode_request(message(FUSE_LOOKUP, 1, cstr(std::string(256, 'n')))).error().code, EINVAL);
  auto ok = decode_request(message(FUSE_LOOKUP, 1, cstr(std::string(255, 'n'))));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->name.size(), 255u);
  EXPECT_EQ(decode_request(message(FUSE_GETXATTR, 1, bytes_of(fuse_getxattr_in{}))).error().code, EINVAL);
  // BATCH_FORGET's count must match the entries present.
  fuse_batch_forget_in bf{};
  bf.count = 3;
  auto two = cat(bytes_of(fuse_forget_one{5, 1}), bytes_of(fuse_forget_one{6, 1}));
  EXPECT_EQ(decode_request(message(FUSE_BATCH_FORGET, 0, cat(bytes_of(bf), two))).error().code, EINVAL);
  bf.count = 0xffffffff;
  EXPECT_EQ(decode_request(message(FUSE_BATCH_FORGET, 0, cat(bytes_of(bf), two))).error().code, EINVAL);
  bf.count = 2;
  auto batch = decode_request(message(FUSE_BATCH_FORGET, 0, cat(bytes_of(bf), two)));
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(std::get<FuseBatchForget>(batch->args).items.size(), 2u);
  EXPECT_EQ(decode_request(message(9999, 1, {})).error().code, ENOSYS);
  // Old kernels' 16-byte INIT body is accepted.
  auto old_in = init_in(7, 31);
  auto old = decode_request(message(FUSE_INIT, 0, bytes_of(&old_in, 16)));
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(std::get<fuse_init_in>(old->args).minor, 31u);
}

class FsFuseServer : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    auto spool = image::Spool::create(tmp_.path());
    ASSERT_TRUE(spool.ok());
    spool_.emplace(std::move(*spool));
    image::FsTree tree;
    auto& root = tree.root();
    root.mtime = {1700000000, 0};
    file_ = add_file(root, "file", std::string(10000, 'f') + "end");
    file_->xattrs["user.a"] = "alpha";
    file_->xattrs["trusted.b"] = std::string(100, 'b');
    auto dir = add(root, "dir", FileType::kDirectory, 0750);
    dir->children["hard"] = file_;
    for (int i = 0; i < 200; ++i) add_file(*dir, "entry-" + std::to_string(i), "x");
    add(root, "link", FileType::kSymlink, 0777)->symlink_target = "dir/hard";
    auto dev = add(root, "null", FileType::kCharDevice, 0666);
    dev->rdev_major = 1;
    dev->rdev_minor = 3;
    std::string path = tmp_ / "image.erofs";
    ASSERT_TRUE(image::testing::write_image(tree, *spool_, path).ok());
    auto reader = image::ErofsReader::open(path);
    ASSERT_TRUE(reader.ok()) << reader.error().message;
    backend_.emplace(std::move(*reader));
    server_.emplace(*backend_);
  }

  image::InodePtr add(image::Inode& dir, const std::string& name, FileType type, std::uint32_t mode) {
    auto inode = image::make_inode(type, mode);
    inode->mtime = {1700000000, 0};
    dir.children[name] = inode;
    return inode;
  }
  image::InodePtr add_file(image::Inode& dir, const std::string& name, const std::string& data) {
    auto inode = add(dir, name, FileType::kRegular, 0644);
    inode->content = *spool_->add(data);
    return inode;
  }

  // Sends one request; returns the reply's payload and checks the header.
  std::string call(std::uint32_t opcode, std::uint64_t nodeid, const std::vector<std::uint8_t>& body,
                   int want_error = 0) {
    auto m = message(opcode, nodeid, body, ++unique_);
    server_->handle(m, reply_);
    EXPECT_TRUE(reply_.should_send());
    auto iov = reply_.iovecs();
    fuse_out_header h;
    std::memcpy(&h, iov[0].iov_base, sizeof h);
    EXPECT_EQ(h.unique, unique_);
    EXPECT_EQ(h.error, -want_error) << fuse_opcode_name(opcode);
    EXPECT_EQ(h.len, sizeof h + iov[1].iov_len);
    return std::string(static_cast<const char*>(iov[1].iov_base), iov[1].iov_len);
  }

  template <typename T>
  T as(const std::string& payload) {
    EXPECT_EQ(payload.size(), sizeof(T));
    T v{};
    std::memcpy(&v, payload.data(), std::min(payload.size(), sizeof v));
    return v;
  }

  void init(std::uint32_t flags = FUSE_DO_READDIRPLUS | FUSE_ASYNC_READ | FUSE_MAX_PAGES) {
    auto out = as<fuse_init_out>(call(FUSE_INIT, 0, bytes_of(init_in(7, 38, flags))));
    EXPECT_EQ(out.major, 7u);
    EXPECT_EQ(out.minor, 38u);
  }

  fuse_entry_out lookup(std::uint64_t parent, const std::string& name) {
    return as<fuse_entry_out>(call(FUSE_LOOKUP, parent, cstr(name)));
  }

  // All names of a directory via READDIR(PLUS) in chunks of `size` bytes.
  std::map<std::string, fuse_entry_out> list(std::uint64_t dir, bool plus, std::uint32_t size) {
    std::map<std::string, fuse_entry_out> out;
    std::uint64_t off = 0;
    for (int guard = 0; guard < 1000; ++guard) {
      fuse_read_in in{};
      in.offset = off;
      in.size = size;
      std::string p = call(plus ? FUSE_READDIRPLUS : FUSE_READDIR, dir, bytes_of(in));
      if (p.empty()) return out;
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
        EXPECT_TRUE(out.emplace(name, e).second) << "repeated " << name;
        if (plus && name != "." && name != "..") {
          EXPECT_EQ(e.attr.ino, d.ino);
        }
        off = d.off;
        pos += FUSE_DIRENT_ALIGN(sizeof d + d.namelen);
      }
      EXPECT_EQ(pos, p.size());
    }
    ADD_FAILURE() << "readdir did not end";
    return out;
  }

  image::testing::TempDir tmp_;
  std::optional<image::Spool> spool_;
  image::InodePtr file_;
  std::optional<ErofsBackend> backend_;
  std::optional<FuseServer> server_;
  FuseReply reply_;
  std::uint64_t unique_ = 100;
};

TEST_F(FsFuseServer, InitNegotiation) {
  call(FUSE_GETATTR, 1, bytes_of(fuse_getattr_in{}), EIO);  // nothing before INIT
  call(FUSE_INIT, 0, bytes_of(init_in(7, 30)), EPROTO);
  // A newer major gets our version only, and the kernel asks again.
  auto newer = as<fuse_init_out>(call(FUSE_INIT, 0, bytes_of(init_in(8, 0))));
  EXPECT_EQ(newer.major, 7u);
  EXPECT_EQ(newer.flags, 0u);
  EXPECT_FALSE(server_->initialized());
  auto out = as<fuse_init_out>(call(FUSE_INIT, 0, bytes_of(init_in(7, 36, FUSE_DO_READDIRPLUS |
      FUSE_PARALLEL_DIROPS | FUSE_POSIX_ACL | FUSE_WRITEBACK_CACHE | FUSE_MAX_PAGES))));
  EXPECT_EQ(out.minor, 36u);
  EXPECT_EQ(out.flags, FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES);
  EXPECT_EQ(out.max_write, kFuseMaxWrite);
  EXPECT_EQ(out.max_readahead, 128u * 1024);
  EXPECT_EQ(out.max_pages, 256u);
  EXPECT_TRUE(server_->initialized());
  EXPECT_TRUE(server_->session().readdirplus);
  call(FUSE_INIT, 0, bytes_of(init_in()), EPROTO);  // only once
}

TEST_F(FsFuseServer, NoOpenSupportSkipsOpens) {
  auto out = as<fuse_init_out>(call(FUSE_INIT, 0, bytes_of(init_in(7, 38, FUSE_NO_OPEN_SUPPORT |
      FUSE_NO_OPENDIR_SUPPORT))));
  EXPECT_EQ(out.flags, FUSE_NO_OPEN_SUPPORT | FUSE_NO_OPENDIR_SUPPORT);
  fuse_open_in oi{};
  call(FUSE_OPEN, lookup(1, "file").nodeid, bytes_of(oi), ENOSYS);
  call(FUSE_OPENDIR, 1, bytes_of(oi), ENOSYS);
  // Reads work without an open.
  fuse_read_in ri{};
  ri.size = 3;
  EXPECT_EQ(call(FUSE_READ, lookup(1, "file").nodeid, bytes_of(ri)), "fff");
}

TEST_F(FsFuseServer, LookupGetattrReadAndHardlinks) {
  init();
  auto f = lookup(1, "file");
  EXPECT_GE(f.nodeid, 2u);
  EXPECT_EQ(f.attr.mode, S_IFREG | 0644u);
  EXPECT_EQ(f.attr.size, 10003u);
  EXPECT_EQ(f.attr.nlink, 2u);
  EXPECT_EQ(f.attr.mtime, 1700000000u);
  EXPECT_EQ(f.entry_valid, 86400u);
  EXPECT_EQ(f.attr.ino, backend_->nid_of(f.nodeid));
  auto dir = lookup(1, "dir");
  EXPECT_EQ(dir.attr.mode, S_IFDIR | 0750u);
  auto hard = lookup(dir.nodeid, "hard");
  EXPECT_EQ(hard.nodeid, f.nodeid);
  EXPECT_EQ(hard.attr.ino, f.attr.ino);
  // A missing name is a cacheable negative entry.
  auto missing = lookup(1, "missing");
  EXPECT_EQ(missing.nodeid, 0u);
  EXPECT_EQ(missing.entry_valid, 86400u);
  call(FUSE_LOOKUP, f.nodeid, cstr("x"), ENOTDIR);

  auto root = as<fuse_attr_out>(call(FUSE_GETATTR, 1, bytes_of(fuse_getattr_in{})));
  EXPECT_EQ(root.attr.mode, S_IFDIR | 0755u);
  EXPECT_EQ(root.attr.nlink, 3u);

  fuse_open_in oi{};
  oi.flags = O_RDONLY;
  auto open = as<fuse_open_out>(call(FUSE_OPEN, f.nodeid, bytes_of(oi)));
  EXPECT_EQ(open.open_flags, static_cast<std::uint32_t>(FOPEN_KEEP_CACHE));
  oi.flags = O_RDWR;
  call(FUSE_OPEN, f.nodeid, bytes_of(oi), EROFS);
  oi.flags = O_RDONLY;
  call(FUSE_OPEN, dir.nodeid, bytes_of(oi), EISDIR);
  call(FUSE_OPENDIR, f.nodeid, bytes_of(oi), ENOTDIR);

  fuse_read_in ri{};
  ri.offset = 9998;
  ri.size = 100;
  EXPECT_EQ(call(FUSE_READ, f.nodeid, bytes_of(ri)), "ffend");
  ri.offset = 0;
  ri.size = 1u << 30;  // capped, not allocated
  EXPECT_EQ(call(FUSE_READ, f.nodeid, bytes_of(ri)), std::string(10000, 'f') + "end");
  ri.offset = 20000;
  EXPECT_EQ(call(FUSE_READ, f.nodeid, bytes_of(ri)), "");

  auto link = lookup(1, "link");
  EXPECT_EQ(call(FUSE_READLINK, link.nodeid, {}), "dir/hard");
  call(FUSE_READLINK, f.nodeid, {}, EINVAL);
  auto null = lookup(1, "null");
  EXPECT_EQ(null.attr.rdev, (1u << 8) | 3u);

  // Node ids that name no valid inode are errors, not crashes.
  call(FUSE_GETATTR, 1ull << 40, bytes_of(fuse_getattr_in{}), EIO);
  call(FUSE_GETATTR, 3, bytes_of(fuse_getattr_in{}), EIO);
}

TEST_F(FsFuseServer, ReaddirAndReaddirplusInSmallChunks) {
  init();
  auto dir = lookup(1, "dir");
  for (bool plus : {false, true}) {
    for (std::uint32_t size : {200u, 4096u, 1u << 20}) {
      auto entries = list(dir.nodeid, plus, size);
      ASSERT_EQ(entries.size(), 203u) << plus << " " << size;
      EXPECT_TRUE(entries.count("."));
      EXPECT_TRUE(entries.count("entry-199"));
      if (plus) {
        EXPECT_EQ(entries["hard"].nodeid, lookup(1, "file").nodeid);
        EXPECT_EQ(entries["entry-5"].attr.size, 1u);
        EXPECT_EQ(entries["entry-5"].attr_valid, 86400u);
        EXPECT_EQ(entries["."].nodeid, 0u);
      }
    }
  }
  // A buffer too small for a single entry gives an empty reply, not a loop.
  fuse_read_in in{};
  in.size = 10;
  EXPECT_EQ(call(FUSE_READDIR, dir.nodeid, bytes_of(in)), "");
  call(FUSE_READDIR, lookup(1, "file").nodeid, bytes_of(in), ENOTDIR);
}

TEST_F(FsFuseServer, Xattrs) {
  init();
  auto f = lookup(1, "file");
  fuse_getxattr_in in{};
  auto get = [&](const std::string& name, std::uint32_t size, int err = 0) {
    in.size = size;
    return call(FUSE_GETXATTR, f.nodeid, cat(bytes_of(in), cstr(name)), err);
  };
  EXPECT_EQ(as<fuse_getxattr_out>(get("user.a", 0)).size, 5u);
  EXPECT_EQ(get("user.a", 5), "alpha");
  EXPECT_EQ(get("user.a", 1000), "alpha");
  get("user.a", 4, ERANGE);
  EXPECT_EQ(get("trusted.b", 100), std::string(100, 'b'));
  get("user.none", 100, ENODATA);
  in.size = 0;
  std::string expected = std::string("user.a") + '\0' + "trusted.b" + '\0';
  EXPECT_EQ(as<fuse_getxattr_out>(call(FUSE_LISTXATTR, f.nodeid, bytes_of(in))).size, expected.size());
  in.size = 4096;
  std::string names = call(FUSE_LISTXATTR, f.nodeid, bytes_of(in));
  std::set<std::string> got;
  for (std::size_t p = 0; p < names.size(); p += std::strlen(names.c_str() + p) + 1) got.insert(names.c_str() + p);
  EXPECT_EQ(got, (std::set<std::string>{"user.a", "trusted.b"}));
  in.size = 3;
  call(FUSE_LISTXATTR, f.nodeid, bytes_of(in), ERANGE);
}

TEST_F(FsFuseServer, WritesUnknownOpcodesAndNoReplyRequests) {
  init();
  fuse_mkdir_in mk{};
  call(FUSE_MKDIR, 1, cat(bytes_of(mk), cstr("new")), EROFS);
  call(FUSE_UNLINK, 1, cstr("file"), EROFS);
  call(FUSE_SETATTR, 1, bytes_of(fuse_setattr_in{}), EROFS);
  call(FUSE_GETLK, 1, bytes_of(fuse_lk_in{}), ENOSYS);
  call(FUSE_FLUSH, 1, bytes_of(fuse_flush_in{}), ENOSYS);
  call(FUSE_FSYNC, 1, bytes_of(fuse_fsync_in{}));
  call(4242, 1, {}, ENOSYS);
  call(FUSE_LOOKUP, 1, {'x'}, EINVAL);
  auto st = as<fuse_statfs_out>(call(FUSE_STATFS, 1, {}));
  EXPECT_EQ(st.st.bsize, 4096u);
  EXPECT_EQ(st.st.namelen, 255u);
  EXPECT_GT(st.st.blocks, 0u);
  fuse_lseek_in ls{};
  ls.offset = 10;
  ls.whence = SEEK_HOLE;
  auto f = lookup(1, "file");
  EXPECT_EQ(as<fuse_lseek_out>(call(FUSE_LSEEK, f.nodeid, bytes_of(ls))).offset, 10003u);
  ls.offset = 10003;
  call(FUSE_LSEEK, f.nodeid, bytes_of(ls), ENXIO);

  for (auto m : {message(FUSE_FORGET, f.nodeid, bytes_of(fuse_forget_in{1})),
                 message(FUSE_INTERRUPT, 0, bytes_of(fuse_interrupt_in{5}))}) {
    server_->handle(m, reply_);
    EXPECT_FALSE(reply_.should_send());
  }
  // Too short for a header: no request to answer.
  std::vector<std::uint8_t> junk(10, 0xff);
  server_->handle(junk, reply_);
  EXPECT_FALSE(reply_.should_send());
  call(FUSE_DESTROY, 0, {});
  EXPECT_TRUE(server_->destroyed());
}

}  // namespace
}  // namespace moat::fs
