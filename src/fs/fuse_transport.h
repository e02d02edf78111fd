// Where FUSE requests come from and replies go. The dispatcher works on
// (request bytes) -> (reply iovecs); a transport moves those bytes: the
// /dev/fuse device here, virtio-fs queues later.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "fs/fuse_server.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::fs {

class FuseTransport {
 public:
  virtual ~FuseTransport() = default;
  // Blocks for the next request and copies it into `buf` (at least
  // kFuseRequestBufferSize bytes). Returns its size, or 0 once the session
  // is over (unmounted).
  virtual Result<std::size_t> receive(std::span<std::uint8_t> buf) = 0;
  virtual Status send(std::span<const iovec> reply) = 0;
};

// /dev/fuse: one read() is one request, one writev() one reply. Several
// threads may call receive() and send() at once; the kernel hands each
// request to exactly one reader.
class DevFuseTransport : public FuseTransport {
 public:
  explicit DevFuseTransport(int fd) : fd_(fd) {}
  Result<std::size_t> receive(std::span<std::uint8_t> buf) override;
  Status send(std::span<const iovec> reply) override;

 private:
  int fd_;  // not owned
};

// Runs `threads` workers that receive, dispatch and reply until the
// transport reports the end of the session. No lock is held across I/O:
// each worker has its own buffers. Returns the first worker error.
Status serve(FuseServer& server, FuseTransport& transport, unsigned threads);

}  // namespace moat::fs
