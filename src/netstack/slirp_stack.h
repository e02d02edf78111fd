// libslirp, the user-mode TCP/IP stack of a sandbox's network, wrapped for
// one guest link (proto/guest_network.h) and one poll loop.
//
// The stack terminates the guest's TCP and UDP and opens the host sockets
// for them. It sees only frames the network filter passed (network_filter.h):
// it never decides what the guest may reach. Its own services that would
// decide for us are off: DHCP (the agent configures the link), DNS
// forwarding (the sandbox's resolver answers), TFTP and the "emulation" of
// old protocols.
//
// One fact of libslirp shapes the filter: every address of the guest's
// prefix (10.0.2.0/24, fd00:6d6f:6174::/64) other than the resolver leads
// to the host's loopback. So the filter lets through only the gateway.
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "net/ip_address.h"
#include "util/result.h"

struct Slirp;

namespace moat::netstack {

class SlirpStack {
 public:
  struct Callbacks {
    // A frame for the guest. Must not call back into the stack.
    std::function<void(std::span<const std::uint8_t>)> to_guest;
    // Something the guest did wrong, in libslirp's words.
    std::function<void(const std::string&)> guest_error;
  };

  static Result<std::unique_ptr<SlirpStack>> create(Callbacks callbacks);
  ~SlirpStack();
  SlirpStack(const SlirpStack&) = delete;
  SlirpStack& operator=(const SlirpStack&) = delete;

  // A guest frame the filter passed.
  void input(std::span<const std::uint8_t> frame);

  // Publishes a guest port: connections (or datagrams) to host_ip:host_port
  // reach the guest's port. EADDRINUSE and friends name the address.
  Status add_forward(const net::IpAddress& host_ip, std::uint16_t host_port, std::uint16_t guest_port, bool udp);
  // Closes such a host socket; connections it accepted go on.
  void remove_forward(const net::IpAddress& host_ip, std::uint16_t host_port, bool udp);

  // The poll loop: `fill` appends the stack's descriptors to `fds` and
  // lowers `timeout_ms` (-1: none) to when the stack next needs to run;
  // after poll(), `dispatch` hands the results back. Between the two,
  // `fds` may only grow.
  void fill(std::vector<pollfd>& fds, int& timeout_ms);
  void dispatch(const std::vector<pollfd>& fds, bool poll_failed);
  // Runs the timers that are due.
  void run_timers();

 private:
  struct Timer {
    int id = 0;
    void* cb_opaque = nullptr;
    std::int64_t expire_ms = -1;  // -1: not armed
  };

  explicit SlirpStack(Callbacks callbacks) : callbacks_(std::move(callbacks)) {}

  static std::int64_t now_ms();

  Callbacks callbacks_;
  Slirp* slirp_ = nullptr;
  std::list<Timer> timers_;  // stable addresses: libslirp holds pointers to them
  std::vector<pollfd>* fds_ = nullptr;  // during fill and dispatch
  std::size_t first_fd_ = 0;

  friend struct SlirpCallbacks;
};

}  // namespace moat::netstack
