// Bytes -> FUSE request decoder -> dispatcher -> EROFS backend on a small
// image built at start-up. Whatever the message, the server must produce a
// well-formed reply (or none) without crashing or reading out of bounds.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "fs/erofs_backend.h"
#include "fs/fuse_server.h"
#include "image/erofs_writer.h"
#include "image/fs_tree.h"
#include "image/spool.h"

namespace {

using namespace moat;

std::unique_ptr<fs::ErofsBackend> make_backend() {
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
std::unique_ptr<fs::FuseServer> make_server(fs::ErofsBackend& backend) {
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::unique_ptr<fs::ErofsBackend> backend = make_backend();
  static std::unique_ptr<fs::FuseServer> server = backend ? make_server(*backend) : nullptr;
  if (!server) return 0;
  // Most inputs get a correct length field, so the fuzzer spends its time in
  // the bodies; odd first bytes keep the length check itself covered.
  std::vector<std::uint8_t> msg(data, data + size);
  if (size >= sizeof(fuse_in_header) && (data[0] & 1) == 0) {
    auto len = static_cast<std::uint32_t>(size);
    std::memcpy(msg.data(), &len, sizeof len);
  }
  fs::FuseReply reply;
  server->handle(msg, reply);
  if (reply.should_send()) {
    auto iov = reply.iovecs();
    if (iov[0].iov_len != sizeof(fuse_out_header) || reply.size() > (2u << 20)) __builtin_trap();
  }
  return 0;
}
