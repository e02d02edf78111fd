// Bytes -> guest memory holding a split virtqueue -> pop every chain, serve
// it with the FUSE server on a small EROFS image, scatter the reply, push.
// Whatever the descriptors say (loops, wild addresses and lengths, index
// jumps, nested indirect tables), the queue must either work or report an
// error, without reading or writing outside guest memory and without
// looping forever.
//
// Input: 8 control bytes (queue size, features, start index, request buffer
// size), then the guest memory image (descriptor table at 0, avail ring at
// 0x1000, used ring at 0x2000, anything else after).
#include <linux/fuse.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "fs/erofs_backend.h"
#include "fs/fuse_request.h"
#include "fs/fuse_server.h"
#include "image/erofs/erofs_writer.h"
#include "image/erofs/fs_tree.h"
#include "image/erofs/spool.h"
#include "vhost_user/guest_memory.h"
#include "vhost_user/virtqueue.h"

namespace {

using namespace moat;

constexpr std::size_t kMemSize = 64 * 1024;
constexpr std::uint64_t kGuestBase = 0x10000;  // non-zero, so address 0 is outside
constexpr std::uint64_t kUserBase = 0x7f0000000000;

std::unique_ptr<fs::ErofsBackend> make_backend() {
  auto spool = image::Spool::create("/tmp");
  if (!spool.ok()) return nullptr;
  image::FsTree tree;
  auto file = image::make_inode(image::FileType::kRegular, 0644);
  file->content = *spool->add(std::string(9000, 'x'));
  tree.root().children["file"] = file;
  auto dir = image::make_inode(image::FileType::kDirectory, 0755);
  tree.root().children["dir"] = dir;
  int fd = ::memfd_create("image", MFD_CLOEXEC);
  if (fd < 0 || !image::write_erofs(tree, *spool, fd).ok()) return nullptr;
  auto reader = image::ErofsReader::from_fd(UniqueFd(fd));
  if (!reader.ok()) return nullptr;
  return std::make_unique<fs::ErofsBackend>(std::move(*reader));
}

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
  static std::vector<std::uint8_t> request(fs::kFuseRequestBufferSize);
  if (!server || size < 8) return 0;
  // Exactly kMemSize bytes, so ASan catches any access past the region.
  std::vector<std::uint8_t> mem(kMemSize, 0);
  std::memcpy(mem.data(), data + 8, std::min(size - 8, kMemSize));
  auto guest = vhost_user::GuestMemory::borrow(mem, kGuestBase, kUserBase);
  if (!guest.ok()) __builtin_trap();

  vhost_user::VirtqueueLayout layout;
  layout.num = static_cast<std::uint16_t>(1u << (data[0] % 9));  // 1..256: fits before 0x1000
  layout.desc_addr = kUserBase;
  layout.avail_addr = kUserBase + 0x1000;
  layout.used_addr = kUserBase + 0x2000;
  layout.event_idx = data[1] & 1;
  layout.indirect = data[1] & 2;
  std::memcpy(&layout.last_avail, data + 2, 2);
  // A small request buffer now and then covers the "request too large" path.
  std::size_t request_len = (data[4] & 1) ? 1 + data[5] * 16u : request.size();
  auto vq = vhost_user::Virtqueue::attach(*guest, layout);
  if (!vq.ok()) return 0;

  vhost_user::VirtqueueChain chain;
  fs::FuseReply reply;
  // Every pop consumes an avail entry, and avail may be at most num ahead:
  // this bound is never what ends a well-behaved run.
  for (unsigned i = 0; i <= layout.num + 1u; ++i) {
    auto got = vq->pop(chain, std::span(request.data(), request_len));
    if (!got.ok() || !*got) break;
    if (chain.readable > request_len || chain.writable > UINT32_MAX) __builtin_trap();
    server->handle(std::span<const std::uint8_t>(request.data(), chain.readable), reply);
    std::uint32_t used = 0;
    if (reply.should_send() && reply.size() <= chain.writable) {
      used = vq->scatter(chain, reply.iovecs());
      if (used != reply.size()) __builtin_trap();
    }
    vq->push(chain, used);
    vq->should_signal();
    auto more = vq->arm_notification();
    if (!more.ok()) break;
  }
  return 0;
}
