// The vhost-user message loop from arbitrary bytes: the frontend's side of
// the socket (QEMU's, and a jailed QEMU's is not to be trusted either) is
// the fuzz input, served by the generic backend with a two-queue device. No
// descriptors can come with the bytes, so memory tables and kick fds are
// refused; every other request, header, size and queue index is exercised.
// The backend must end (error or clean end of stream), never crash or hang.
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "vhost_user/backend.h"
#include "vhost_user/device.h"
#include "vhost_user/virtqueue.h"

namespace {

using namespace moat;
using namespace moat::vhost_user;

constexpr std::array<std::uint8_t, 8> kConfig = {1, 2, 3, 4, 5, 6, 7, 8};

class NullDevice final : public Device {
 public:
  std::string_view name() const override { return "fuzz"; }
  std::uint64_t features() const override { return 1ull << 5; }
  unsigned num_queues() const override { return 2; }
  unsigned max_queue_size() const override { return 16; }
  std::span<const std::uint8_t> config() const override { return kConfig; }
  Status process_queue(unsigned, Virtqueue&) override { return ok_status(); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Replies pile up unread in our end; bounded input keeps them under the
  // socket buffer so the backend never blocks on a send.
  if (size > 16 * 1024) return 0;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  UniqueFd ours(sv[0]);
  NullDevice device;
  auto backend = Backend::adopt(UniqueFd(sv[1]), device);
  if (!backend.ok()) return 0;
  std::size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(ours.get(), data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(ours.get(), SHUT_WR);
  (void)(*backend)->run();
  return 0;
}
