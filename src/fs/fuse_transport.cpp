#include "fs/fuse_transport.h"

#include <unistd.h>

#include <mutex>
#include <thread>
#include <vector>

#include "fs/fuse_reply.h"

namespace moat::fs {

Result<std::size_t> DevFuseTransport::receive(std::span<std::uint8_t> buf) {
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) {
      if (n == 0) return std::size_t{0};
      return static_cast<std::size_t>(n);
    }
    // ENOENT: the request was interrupted before it was read. EINTR/EAGAIN:
    // nothing to read yet.
    if (errno == EINTR || errno == EAGAIN || errno == ENOENT) continue;
    if (errno == ENODEV) return std::size_t{0};  // unmounted
    return errno_error("read /dev/fuse");
  }
}

Status DevFuseTransport::send(std::span<const iovec> reply) {
  for (;;) {
    ssize_t n = ::writev(fd_, reply.data(), static_cast<int>(reply.size()));
    if (n >= 0) return ok_status();
    if (errno == EINTR) continue;
    // ENOENT: the request was interrupted and is gone; not an error of ours.
    if (errno == ENOENT || errno == ENODEV) return ok_status();
    return errno_error("write /dev/fuse");
  }
}

namespace {

Status worker(FuseServer& server, FuseTransport& transport) {
  std::vector<std::uint8_t> buf(kFuseRequestBufferSize);
  FuseReply reply;
  for (;;) {
    MOAT_ASSIGN_OR_RETURN(std::size_t n, transport.receive(buf));
    if (n == 0) return ok_status();
    server.handle(std::span<const std::uint8_t>(buf.data(), n), reply);
    if (!reply.should_send()) continue;
    auto iov = reply.iovecs();
    MOAT_TRY(transport.send(iov));
  }
}

}  // namespace

Status serve(FuseServer& server, FuseTransport& transport, unsigned threads) {
  std::mutex mu;
  Status first;
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < std::max(threads, 1u); ++i) {
    pool.emplace_back([&] {
      Status st = worker(server, transport);
      std::lock_guard lock(mu);
      if (!st.ok() && first.ok()) first = st;
    });
  }
  Status own = worker(server, transport);
  for (auto& t : pool) t.join();
  if (!own.ok()) return own;
  return first;
}

}  // namespace moat::fs
