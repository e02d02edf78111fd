// The way of a connection the filter hands over for TLS interception
// (docs/tls.md, "Redirecting a connection"), made on the network thread:
//
//  1. begin(): a socket of the shim's own connects to the real server (the
//     gateway's addresses translated to the host's loopback, as the stack
//     does). The filter holds the guest's SYN meanwhile.
//  2. Connected: a listener for this connection alone on the host's
//     loopback (127.0.0.1 or ::1, a port the kernel picks); `ready` tells
//     the filter, which sends the SYN to the stack addressed to it.
//     Failed: `failed` (the guest gets a reset).
//  3. The stack connects to the listener: the peer must be one of the
//     stack's own sockets (`is_stack_socket`), or it is closed and the
//     listener waits on; the listener is closed and both sockets go to
//     `hand_over` (the interceptor).
//
// Nothing calls back from inside begin(): a socket that cannot even be made
// fails on the next dispatch, so the filter's tables are never changed
// under it. Each step has a deadline (kConnectTimeout, kAcceptTimeout).
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <list>
#include <string>
#include <vector>

#include "net/ip_address.h"
#include "net/packet.h"
#include "tls/interceptor.h"
#include "util/unique_fd.h"

namespace moat::netstack {

class InterceptRedirect {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kConnectTimeout{30};
  static constexpr std::chrono::seconds kAcceptTimeout{10};

  struct Hooks {
    std::function<bool(const std::string& key, const net::Endpoint& stack_side)> ready;
    std::function<void(const std::string& key, int error)> failed;
    std::function<bool(const sockaddr_storage& peer)> is_stack_socket;
    std::function<void(tls::InterceptedConnection)> hand_over;
    std::function<void(const std::string&)> log;
  };

  InterceptRedirect(Hooks hooks, net::IpAddress gateway4, net::IpAddress gateway6);

  // Starts connecting to `remote` for the connection `key` of `guest`.
  // `plain_host`: plain HTTP for this host; `proxy`: `remote` is a
  // declared HTTP proxy (tls::InterceptedConnection).
  void begin(const std::string& key, const net::Endpoint& guest, const net::Endpoint& remote,
             std::string plain_host = {}, bool proxy = false);

  // Adds what it waits on to `fds` and lowers `timeout_ms` to its next
  // deadline; dispatch() reads the same entries after poll().
  void fill(std::vector<pollfd>& fds, int& timeout_ms);
  void dispatch(const std::vector<pollfd>& fds);

  std::size_t pending() const { return pending_.size(); }

 private:
  enum class Step { kConnecting, kListening, kFailed };
  struct Pending {
    std::string key;
    net::Endpoint guest, remote;
    std::string plain_host;
    bool proxy = false;
    UniqueFd upstream, listener;
    Step step = Step::kConnecting;
    int error = 0;
    Clock::time_point deadline;
    std::size_t fd_index = 0;  // in the last fill's vector
  };

  void connected(Pending& p);
  // True when done with `p` (handed over, or given up).
  bool accept_one(Pending& p);
  net::IpAddress host_side(const net::IpAddress& a) const;

  Hooks hooks_;
  net::IpAddress gateway4_, gateway6_;
  std::list<Pending> pending_;
};

}  // namespace moat::netstack
