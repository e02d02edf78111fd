// The FUSE dispatcher: one request's bytes in, one reply out, against an
// FsBackend. Transport-independent: /dev/fuse (fuse_transport.h) and later
// virtio-fs queues feed it the same way.
//
// Thread-safe: workers call handle() concurrently, each with its own
// FuseReply. The only shared state is the INIT outcome, written once before
// the kernel sends anything else.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "fs/fs_backend.h"
#include "fs/fuse_reply.h"
#include "fs/fuse_request.h"

namespace moat::fs {

struct FuseServerOptions {
  // READDIRPLUS answers readdir with attributes, saving a LOOKUP per entry
  // for `ls -l` and `find | stat`.
  bool readdirplus = true;
  std::uint32_t max_background = 64;
  // FUSE_WRITEBACK_CACHE: the kernel buffers writes and sends them later.
  // Off by default: a directory may be shared by two sandboxes (or the
  // host), and buffered writes would be invisible to the others for a while.
  bool writeback_cache = false;
};

// Largest READ / READDIR payload the server produces, whatever the request
// asks: bounds each worker's buffer (256 pages).
inline constexpr std::uint32_t kFuseMaxRead = 1u << 20;

class FuseServer {
 public:
  explicit FuseServer(FsBackend& backend, FuseServerOptions options = {})
      : backend_(backend), options_(options) {}

  // Handles one request. Afterwards reply.should_send() says whether the
  // transport must send it (FORGET and friends have no reply; neither has a
  // message too broken to name the request it answers).
  void handle(std::span<const std::uint8_t> request, FuseReply& reply);

  bool initialized() const { return initialized_.load(std::memory_order_acquire); }
  bool destroyed() const { return destroyed_.load(std::memory_order_acquire); }
  const FuseSession& session() const { return session_; }

 private:
  void dispatch(const FuseRequest& req, FuseReply& reply);
  void init(const FuseRequest& req, FuseReply& reply);
  void xattr_reply(const FuseGetxattr& in, int err, const std::string& value, FuseReply& reply);
  // The tree-changing requests; false if `req` is not one of them.
  bool dispatch_change(const FuseRequest& req, FuseReply& reply);

  FsBackend& backend_;
  FuseServerOptions options_;
  FuseSession session_;
  std::atomic<bool> initialized_{false};
  std::atomic<bool> destroyed_{false};
};

}  // namespace moat::fs
