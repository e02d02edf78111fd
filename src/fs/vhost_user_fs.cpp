#include "fs/vhost_user_fs.h"

#include <linux/fuse.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fs/fuse_reply.h"
#include "fs/fuse_request.h"
#include "vhost_user/backend.h"
#include "vhost_user/device.h"
#include "vhost_user/virtqueue.h"

namespace moat::fs {

namespace vu = vhost_user;

namespace {

// The buffers one queue's worker reuses from request to request.
struct QueueScratch {
  std::vector<std::uint8_t> request = std::vector<std::uint8_t>(kFuseRequestBufferSize);
  FuseReply reply;
  vu::VirtqueueChain chain;

  QueueScratch() { chain.segments.reserve(64); }
};

// FUSE on virtqueues: every chain is one request (device-readable part) and
// room for its reply (device-writable part).
class FsDevice final : public vu::Device {
 public:
  FsDevice(FuseServer& server, VhostUserFsOptions options)
      : server_(server), options_(options), scratch_(1 + options.request_queues) {}

  // Before construction: the queue count sizes the scratch table.
  static Status check_options(const VhostUserFsOptions& options) {
    if (options.request_queues == 0 || options.request_queues > 254)
      return make_error("vhost-user-fs: request_queues must be 1..254", EINVAL);
    if (options.queue_size == 0 || options.queue_size > vu::kVirtqueueMaxSize)
      return make_error("vhost-user-fs: queue_size must be 1..32768", EINVAL);
    return ok_status();
  }

  std::string_view name() const override { return "fs"; }
  // virtio-fs's one feature bit (the notification queue) is not offered.
  std::uint64_t features() const override { return 0; }
  // The hiprio queue, then the request queues.
  unsigned num_queues() const override { return 1 + options_.request_queues; }
  unsigned max_queue_size() const override { return options_.queue_size; }
  // No config space here: QEMU's vhost-user-fs-device builds the tag and
  // queue count the driver reads from its own options.

  Status process_queue(unsigned index, vu::Virtqueue& queue) override;

 private:
  void answer(vu::Virtqueue& queue, QueueScratch& s);

  FuseServer& server_;
  VhostUserFsOptions options_;
  // One slot per queue, filled on its first use (most guests use only a
  // few of the queues offered). Each slot is touched by its queue's worker
  // alone: the backend never runs one queue on two threads at once.
  std::vector<std::unique_ptr<QueueScratch>> scratch_;
};

Status FsDevice::process_queue(unsigned index, vu::Virtqueue& queue) {
  if (index >= scratch_.size())
    return make_error("queue " + std::to_string(index) + " out of range", EINVAL);
  if (!scratch_[index]) scratch_[index] = std::make_unique<QueueScratch>();
  QueueScratch& s = *scratch_[index];
  for (;;) {
    MOAT_ASSIGN_OR_RETURN(bool got, queue.pop(s.chain, s.request));
    if (!got) return ok_status();
    answer(queue, s);
  }
}

// Hands one popped request to the server and returns the chain with its
// reply. FORGET and INTERRUPT (the hiprio queue) have none.
void FsDevice::answer(vu::Virtqueue& queue, QueueScratch& s) {
  server_.handle(std::span<const std::uint8_t>(s.request.data(), s.chain.readable), s.reply);
  std::uint32_t used = 0;
  if (s.reply.should_send()) {
    if (s.reply.size() <= s.chain.writable) {
      used = queue.scatter(s.chain, s.reply.iovecs());
    } else if (s.chain.writable >= sizeof(fuse_out_header)) {
      // The driver sized the reply buffer too small (the server never
      // answers more than a request asks for): tell it with EIO rather
      // than truncating a reply.
      s.reply.error(EIO);
      used = queue.scatter(s.chain, s.reply.iovecs());
    }
    // No room even for a header: returned with nothing written.
  }
  queue.push(s.chain, used);
}

}  // namespace

class VhostUserFsDevice::Impl {
 public:
  Impl(FuseServer& server, VhostUserFsOptions options) : device(server, options) {}

  FsDevice device;
  // Declared after the device: destroyed first, so its workers are joined
  // while the device still exists.
  std::unique_ptr<vu::Backend> backend;
};

Result<std::unique_ptr<VhostUserFsDevice>> VhostUserFsDevice::listen(const std::string& socket_path,
                                                                     FuseServer& server,
                                                                     VhostUserFsOptions options) {
  MOAT_TRY(FsDevice::check_options(options));
  auto impl = std::make_unique<Impl>(server, options);
  MOAT_ASSIGN_OR_RETURN(impl->backend, vu::Backend::listen(socket_path, impl->device));
  return std::unique_ptr<VhostUserFsDevice>(new VhostUserFsDevice(std::move(impl)));
}

Result<std::unique_ptr<VhostUserFsDevice>> VhostUserFsDevice::adopt(UniqueFd connection, FuseServer& server,
                                                                    VhostUserFsOptions options) {
  MOAT_TRY(FsDevice::check_options(options));
  auto impl = std::make_unique<Impl>(server, options);
  MOAT_ASSIGN_OR_RETURN(impl->backend, vu::Backend::adopt(std::move(connection), impl->device));
  return std::unique_ptr<VhostUserFsDevice>(new VhostUserFsDevice(std::move(impl)));
}

VhostUserFsDevice::VhostUserFsDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VhostUserFsDevice::~VhostUserFsDevice() = default;
Status VhostUserFsDevice::run() { return impl_->backend->run(); }
void VhostUserFsDevice::stop() { impl_->backend->stop(); }

}  // namespace moat::fs
