// A sandbox's network, running: the user-mode stack, the filter in front of
// it and the resolver, on a thread of their own in the shim, wired to QEMU's
// virtio-net device by a stream socket (QEMU's `-netdev stream` framing: a
// 4-byte big-endian length, then the Ethernet frame).
//
// Its own thread, so that the data path never waits behind the shim's
// control work and the other way round. The shim talks to it through three
// calls: start (before QEMU starts, so a published port already taken fails
// the boot), update_policy (returns once applied) and the destructor.
//
// Bounds: frames to the guest queue up to kMaxGuestQueue bytes; past
// kPauseStack the stack's host sockets are not read (the hosts see TCP
// back-pressure); past the queue's bound, frames are dropped (TCP resends).
// A frame length QEMU could not have written ends the network.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "net/network_settings.h"
#include "tls/secret_rewriter.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::netstack {

class NetworkService {
 public:
  // Lines for the sandbox's log. Called on the network thread and on the
  // TLS interceptor's.
  using Log = std::function<void(const std::string&)>;

  static constexpr std::size_t kMaxFrame = 65536 + 14;
  static constexpr std::size_t kPauseStack = 2u << 20;
  static constexpr std::size_t kMaxGuestQueue = 16u << 20;

  // The sandbox's secrets for the TLS interceptor (docs/tls.md), and what a
  // violation does besides the reset and the log line (called on the
  // interceptor's thread). Secrets turn interception on for their hosts.
  struct Secrets {
    std::vector<tls::SecretBinding> bindings;
    std::function<void(const std::string&)> on_violation;
  };

  // `qemu_end` receives the socket QEMU inherits as its netdev.
  // `on_thread_start` runs first on each thread the service starts (its own
  // and the TLS interceptor's), before either touches a guest frame: the
  // shim drops those threads' capabilities there (they are per thread).
  static Result<std::unique_ptr<NetworkService>> start(const net::NetworkSettings& settings, Log log,
                                                       UniqueFd& qemu_end, Secrets secrets = {},
                                                       std::function<void()> on_thread_start = {});
  ~NetworkService();
  NetworkService(const NetworkService&) = delete;
  NetworkService& operator=(const NetworkService&) = delete;

  // Replaces the policy. When this returns, flows the new policy denies are
  // closed and new ones are decided by it.
  void update_policy(std::shared_ptr<const net::Policy> policy);

  // --publish-listening (docs/network.md): the guest's listening TCP ports
  // now, the whole set. Applied on the network thread soon after (not
  // waited for); what it opens and closes goes to the log. Ignored unless
  // the settings named an address.
  using PortSet = std::set<std::uint16_t>;
  static constexpr std::size_t kMaxListeningForwards = 256;
  void publish_listening(PortSet ports);

  // What crossed the guest's link so far, as the guest sees it (tx: frames
  // it sent; rx: frames queued for it). Callable from any thread.
  struct Traffic {
    std::uint64_t tx_bytes = 0, rx_bytes = 0, tx_packets = 0, rx_packets = 0;
    std::uint64_t open_flows = 0;  // TCP connections and UDP flows now
  };
  Traffic traffic() const;

 public:
  struct Impl;

 private:
  explicit NetworkService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat::netstack
