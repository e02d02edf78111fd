// The virtio-fs device: FUSE served over vhost-user. QEMU's
// vhost-user-fs-device connects to a unix socket we listen on, hands us the
// guest's memory and the virtqueues, and we serve FUSE requests from those
// queues with a FuseServer (fuse_server.h).
//
// The transport is the generic vhost-user backend (vhost_user/backend.h):
// it answers the protocol messages, maps guest memory and runs one worker
// thread per started queue. This device plugs FUSE into it: queue 0 is the
// hiprio queue (FORGET and INTERRUPT, no replies), queues 1..request_queues
// carry requests; each chain's device-readable bytes are one request and
// its device-writable descriptors receive the reply.
//
// The guest is untrusted: a ring that breaks the rules (vhost_user/virtqueue.h)
// stops its worker, and run() ends with that error; the device does not try
// to continue with a guest that corrupts its own rings. Wire details and
// decisions: docs/fs-server.md, "virtio-fs transport".
#pragma once

#include <memory>
#include <string>

#include "fs/fuse_server.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::fs {

struct VhostUserFsOptions {
  unsigned request_queues = 1;  // advertised num_request_queues
  unsigned queue_size = 1024;   // the most descriptors per queue we accept (QEMU's default)
};

class VhostUserFsDevice {
 public:
  // Creates and listens on `socket_path` (unlinks a stale one; 0600). Serving starts with run().
  static Result<std::unique_ptr<VhostUserFsDevice>> listen(const std::string& socket_path,
                                                           FuseServer& server,
                                                           VhostUserFsOptions options = {});
  // Serves a frontend already connected on `connection` (one end of a
  // socketpair whose other end QEMU inherits). Serving starts with run().
  static Result<std::unique_ptr<VhostUserFsDevice>> adopt(UniqueFd connection, FuseServer& server,
                                                          VhostUserFsOptions options = {});
  // Blocks: accepts one frontend (QEMU) unless adopted, serves it until it disconnects or stop() is called.
  // Returns ok on a clean disconnect/stop, an error (with context) on a protocol violation.
  Status run();
  // Thread-safe, callable from a signal-free context in another thread: makes run() return soon.
  void stop();
  ~VhostUserFsDevice();

  VhostUserFsDevice(const VhostUserFsDevice&) = delete;
  VhostUserFsDevice& operator=(const VhostUserFsDevice&) = delete;

  class Impl;

 private:
  explicit VhostUserFsDevice(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat::fs
