// A virtio-fs device backend over vhost-user: QEMU's vhost-user-fs-device
// connects to a unix socket we listen on as the vhost-user frontend, hands
// us the guest's memory and the virtqueues, and we serve FUSE requests from
// those queues with a FuseServer (fuse_server.h).
//
// Queue 0 is the hiprio queue (FORGET and INTERRUPT, no replies); queues
// 1..request_queues carry requests. Each started queue has a worker thread
// that sleeps on the queue's kick eventfd, drains the ring (request bytes
// gathered from the device-readable descriptors, the reply scattered into
// the device-writable ones) and signals the call eventfd. The socket thread
// (run()) handles the vhost-user messages and starts and stops workers.
//
// The guest is untrusted: a ring that breaks the rules (virtqueue.h) stops
// its worker, and run() ends with that error; the device does not try to
// continue with a guest that corrupts its own rings. Wire details and
// decisions: docs/fs-server.md, "virtio-fs transport".
#pragma once

#include <memory>
#include <string>

#include "fs/fuse_server.h"
#include "util/result.h"

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
  // Blocks: accepts one frontend (QEMU), serves it until it disconnects or stop() is called.
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
