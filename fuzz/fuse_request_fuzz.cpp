// Bytes -> FUSE request decoder -> dispatcher -> a backend. Whatever the
// message, the server must produce a well-formed reply (or none) without
// crashing or reading out of bounds.
//
// Bits 8-9 of the request's `unique` pick the backend:
//   0, 3: the EROFS backend on a small image built at start-up
//   1:    the directory backend, read-write
//   2:    the directory backend, read-only
// The directory backends serve a small tmpfs mounted in a private mount
// namespace (so nothing the fuzzer writes reaches a real disk, and the mount
// goes away with the process). In that namespace every other mount is made
// read-only first, except libFuzzer's output corpus and artifact
// directories: were the backend ever to escape its root, it could not
// change anything on the machine. Without root they are left out. Their
// state (files, nodes, open handles) carries over between inputs and is
// rebuilt every kResetEvery inputs so descriptors and space do not run out.
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/dir_backend.h"
#include "fs/erofs_backend.h"
#include "fs/fuse_server.h"
#include "fs/stat_xattr.h"
#include "image/erofs/erofs_writer.h"
#include "image/erofs/fs_tree.h"
#include "image/erofs/spool.h"

namespace {

using namespace moat;

constexpr int kResetEvery = 2000;

// Directories libFuzzer writes to (LLVMFuzzerInitialize fills it).
std::vector<std::string>& writable_dirs() {
  static std::vector<std::string> dirs;
  return dirs;
}

// mount_setattr(2); glibc's <sys/mount.h> and <linux/mount.h> clash, so by hand.
struct MountAttr {
  std::uint64_t attr_set, attr_clr, propagation, userns_fd;
};
constexpr unsigned kAtRecursive = 0x8000;
constexpr std::uint64_t kMountAttrRdonly = 0x1;

bool set_readonly(const char* path, bool recursive, bool ro) {
  MountAttr a{ro ? kMountAttrRdonly : 0, ro ? 0 : kMountAttrRdonly, 0, 0};
  return ::syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? kAtRecursive : 0, &a, sizeof a) == 0;
}

// Makes every mount of this (private) namespace read-only except the
// directories libFuzzer writes to.
bool lock_down() {
  if (!set_readonly("/", true, true)) return false;
  for (const auto& dir : writable_dirs()) {
    if (::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) != 0) return false;
    if (!set_readonly(dir.c_str(), false, false)) return false;
  }
  return true;
}

std::unique_ptr<fs::ErofsBackend> make_erofs_backend() {
  auto spool = image::Spool::create("/tmp");
  if (!spool.ok()) return nullptr;
  image::FsTree tree;
  auto add = [&](image::Inode& dir, const char* name, image::FileType type, std::uint32_t mode) {
    auto inode = image::make_inode(type, mode);
    dir.children[name] = inode;
    return inode;
  };
  auto file = add(tree.root(), "file", image::FileType::kRegular, 0644);
  file->content = *spool->add(std::string(5000, 'x'));
  file->xattrs["user.a"] = "b";
  auto dir = add(tree.root(), "dir", image::FileType::kDirectory, 0755);
  dir->children["hard"] = file;
  for (int i = 0; i < 40; ++i) add(*dir, ("f" + std::to_string(i)).c_str(), image::FileType::kFifo, 0600);
  add(tree.root(), "link", image::FileType::kSymlink, 0777)->symlink_target = "dir/hard";
  int fd = ::memfd_create("image", MFD_CLOEXEC);
  if (fd < 0 || !image::write_erofs(tree, *spool, fd).ok()) return nullptr;
  auto reader = image::ErofsReader::from_fd(UniqueFd(fd));
  if (!reader.ok()) return nullptr;
  return std::make_unique<fs::ErofsBackend>(std::move(*reader));
}

// A server that has already negotiated INIT.
std::unique_ptr<fs::FuseServer> make_server(fs::FsBackend& backend) {
  auto s = std::make_unique<fs::FuseServer>(backend);
  fuse_in_header h{};
  fuse_init_in in{};
  in.major = 7;
  in.minor = 38;
  in.flags = FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES;
  h.len = sizeof h + sizeof in;
  h.opcode = FUSE_INIT;
  std::vector<std::uint8_t> m(h.len);
  std::memcpy(m.data(), &h, sizeof h);
  std::memcpy(m.data() + sizeof h, &in, sizeof in);
  fs::FuseReply reply;
  s->handle(m, reply);
  return s;
}

void put_file(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  if (::write(fd, data.data(), data.size()) < 0) {
    // Best effort: a missing seed file only narrows the tree.
  }
  ::close(fd);
}

// The directory backends' tree on a fresh tmpfs.
class DirServers {
 public:
  bool start() {
    if (::geteuid() != 0) return false;
    if (::unshare(CLONE_NEWNS) != 0) return false;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
    char tmpl[] = "/tmp/moat-fuzz-dir-XXXXXX";
    if (!::mkdtemp(tmpl)) return false;
    dir_ = tmpl;
    if (!lock_down()) return false;
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
      r.rlim_cur = r.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &r);
    }
    return reset();
  }

  bool reset() {
    rw_server_.reset();
    ro_server_.reset();
    rw_.reset();
    ro_.reset();
    ::umount2(dir_.c_str(), MNT_DETACH);
    if (::mount("moat-fuzz", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                "size=8m,nr_inodes=1024,mode=0755") != 0) {
      return false;
    }
    std::string root = dir_;
    put_file(root + "/file", std::string(5000, 'x'));
    ::setxattr((root + "/file").c_str(), "user.a", "b", 1, 0);
    ::mkdir((root + "/dir").c_str(), 0755);
    ::link((root + "/file").c_str(), (root + "/dir/hard").c_str());
    for (int i = 0; i < 20; ++i) put_file(root + "/dir/f" + std::to_string(i), "y");
    ::symlink("/", (root + "/escape").c_str());
    ::symlink("..", (root + "/dir/up").c_str());
    put_file(root + "/null", "");
    std::string v = fs::encode_guest_stat(fs::GuestStat{0, 0, S_IFCHR | 0666, fs::encode_rdev(1, 3)});
    ::setxattr((root + "/null").c_str(), fs::kStatXattrName, v.data(), v.size(), 0);
    put_file(root + "/bad", "");
    ::setxattr((root + "/bad").c_str(), fs::kStatXattrName, "\x01junk", 5, 0);
    // Few descriptors for the read-write backend: its nodes are closed and
    // reopened (by handle, or by name once the tree changed) all the time.
    auto rw = fs::open_dir_backend(root, fs::DirBackendOptions{false, 4});
    auto ro = fs::open_dir_backend(root, fs::DirBackendOptions{true});
    if (!rw.ok() || !ro.ok()) return false;
    rw_ = std::move(*rw);
    ro_ = std::move(*ro);
    rw_server_ = make_server(*rw_);
    ro_server_ = make_server(*ro_);
    return true;
  }

  fs::FuseServer* rw() { return rw_server_.get(); }
  fs::FuseServer* ro() { return ro_server_.get(); }

 private:
  std::string dir_;
  std::unique_ptr<fs::FsBackend> rw_, ro_;
  std::unique_ptr<fs::FuseServer> rw_server_, ro_server_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // The output corpus (the first directory argument) and the artifact prefix's directory.
  bool corpus = false;
  for (int i = 1; i < *argc; ++i) {
    std::string a = (*argv)[i];
    if (a.rfind("-artifact_prefix=", 0) == 0) {
      std::string prefix = a.substr(17);
      auto slash = prefix.rfind('/');
      writable_dirs().push_back(slash == std::string::npos ? "." : prefix.substr(0, slash + 1));
    } else if (!a.empty() && a[0] != '-' && !corpus) {
      struct stat st {};
      if (::stat(a.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        writable_dirs().push_back(a);
        corpus = true;
      }
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::unique_ptr<fs::ErofsBackend> erofs = make_erofs_backend();
  static std::unique_ptr<fs::FuseServer> erofs_server = erofs ? make_server(*erofs) : nullptr;
  static DirServers dirs;
  static bool have_dirs = [] {
    bool ok = dirs.start();
    std::fprintf(stderr, "fuzz_fuse_request: directory backends %s\n",
                 ok ? "on (private tmpfs)" : "off (they need root and mount_setattr)");
    return ok;
  }();
  static int runs = 0;
  if (!erofs_server) return 0;
  if (have_dirs && ++runs % kResetEvery == 0) have_dirs = dirs.reset();

  // Most inputs get a correct length field, so the fuzzer spends its time in
  // the bodies; odd first bytes keep the length check itself covered.
  std::vector<std::uint8_t> msg(data, data + size);
  if (size >= sizeof(fuse_in_header) && (data[0] & 1) == 0) {
    auto len = static_cast<std::uint32_t>(size);
    std::memcpy(msg.data(), &len, sizeof len);
  }
  fs::FuseServer* server = erofs_server.get();
  if (size >= sizeof(fuse_in_header) && have_dirs) {
    fuse_in_header h;
    std::memcpy(&h, data, sizeof h);
    unsigned pick = (h.unique >> 8) & 3;
    if (pick == 1) server = dirs.rw();
    if (pick == 2) server = dirs.ro();
  }
  fs::FuseReply reply;
  server->handle(msg, reply);
  if (reply.should_send()) {
    auto iov = reply.iovecs();
    if (iov[0].iov_len != sizeof(fuse_out_header) || reply.size() > (2u << 20)) __builtin_trap();
  }
  return 0;
}
