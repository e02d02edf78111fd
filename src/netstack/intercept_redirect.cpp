#include "netstack/intercept_redirect.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace moat::netstack {
namespace {

int milliseconds_until(InterceptRedirect::Clock::time_point when) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(when - InterceptRedirect::Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left + 1, 1 << 30));
}

}  // namespace

InterceptRedirect::InterceptRedirect(Hooks hooks, net::IpAddress gateway4, net::IpAddress gateway6)
    : hooks_(std::move(hooks)), gateway4_(gateway4), gateway6_(gateway6) {}

net::IpAddress InterceptRedirect::host_side(const net::IpAddress& a) const {
  if (a == gateway4_) return *net::IpAddress::parse("127.0.0.1");
  if (a == gateway6_) return *net::IpAddress::parse("::1");
  return a;
}

void InterceptRedirect::begin(const std::string& key, const net::Endpoint& guest, const net::Endpoint& remote,
                              std::string plain_host, bool proxy) {
  pending_.emplace_back();
  Pending& p = pending_.back();
  p.key = key;
  p.plain_host = std::move(plain_host);
  p.proxy = proxy;
  p.guest = guest;
  p.remote = remote;
  p.deadline = Clock::now() + kConnectTimeout;
  p.fd_index = static_cast<std::size_t>(-1);  // not in a poll set until the next fill
  sockaddr_storage addr;
  socklen_t len = net::to_sockaddr(net::Endpoint{host_side(remote.address), remote.port}, addr);
  p.upstream = UniqueFd(::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!p.upstream) {
    p.step = Step::kFailed;
    p.error = errno;
    return;
  }
  if (::connect(p.upstream.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 && errno != EINPROGRESS) {
    p.step = Step::kFailed;
    p.error = errno;
  }
}

void InterceptRedirect::fill(std::vector<pollfd>& fds, int& timeout_ms) {
  for (Pending& p : pending_) {
    int wait = p.step == Step::kFailed ? 0 : milliseconds_until(p.deadline);
    if (timeout_ms < 0 || wait < timeout_ms) timeout_ms = wait;
    p.fd_index = fds.size();
    if (p.step == Step::kConnecting) fds.push_back(pollfd{p.upstream.get(), POLLOUT, 0});
    if (p.step == Step::kListening) fds.push_back(pollfd{p.listener.get(), POLLIN, 0});
    if (p.step == Step::kFailed) fds.push_back(pollfd{-1, 0, 0});
  }
}

void InterceptRedirect::connected(Pending& p) {
  int error = 0;
  socklen_t len = sizeof error;
  if (::getsockopt(p.upstream.get(), SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
  if (error != 0) {
    p.step = Step::kFailed;
    p.error = error;
    return;
  }
  // The listener's family is the guest's: the stack reaches it through
  // the gateway of the same family.
  bool v4 = p.guest.address.is_v4();
  sockaddr_storage addr;
  socklen_t alen = net::to_sockaddr(net::Endpoint{*net::IpAddress::parse(v4 ? "127.0.0.1" : "::1"), 0}, addr);
  p.listener = UniqueFd(::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!p.listener || ::bind(p.listener.get(), reinterpret_cast<sockaddr*>(&addr), alen) != 0 ||
      ::listen(p.listener.get(), 4) != 0 ||
      ::getsockname(p.listener.get(), reinterpret_cast<sockaddr*>(&addr), &alen) != 0) {
    p.step = Step::kFailed;
    p.error = errno;
    return;
  }
  std::uint16_t port = net::endpoint_of(addr)->port;
  p.step = Step::kListening;
  p.deadline = Clock::now() + kAcceptTimeout;
  if (!hooks_.ready(p.key, net::Endpoint{v4 ? gateway4_ : gateway6_, port})) {
    p.step = Step::kFailed;
    p.error = 0;  // the connection is gone already: nothing to tell
  }
}

bool InterceptRedirect::accept_one(Pending& p) {
  while (true) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    UniqueFd fd(::accept4(p.listener.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return false;  // EAGAIN: wait on
    if (!hooks_.is_stack_socket(peer)) {
      if (hooks_.log) hooks_.log("tls: a connection to the listener for " + net::to_string(p.remote) +
                                 " did not come from the sandbox's network; closed");
      continue;
    }
    hooks_.hand_over(tls::InterceptedConnection{std::move(fd), std::move(p.upstream), p.remote.address.to_string(),
                                                net::to_string(p.guest) + " -> " + net::to_string(p.remote),
                                                p.plain_host, p.proxy});
    return true;
  }
}

void InterceptRedirect::dispatch(const std::vector<pollfd>& fds) {
  auto now = Clock::now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = *it;
    short revents = p.fd_index < fds.size() ? fds[p.fd_index].revents : 0;
    bool done = false;
    if (p.step == Step::kConnecting && revents) connected(p);
    if (p.step == Step::kListening && (revents & POLLIN)) done = accept_one(p);
    if (!done && now >= p.deadline) {
      if (p.step == Step::kConnecting) {
        p.step = Step::kFailed;
        p.error = ETIMEDOUT;
      } else if (p.step == Step::kListening) {
        // The SYN is the stack's already: closing the listener makes its
        // connect fail, and the guest gets the stack's reset.
        if (hooks_.log) hooks_.log("tls: the network never connected to the listener for " + net::to_string(p.remote));
        done = true;
      }
    }
    if (p.step == Step::kFailed && !done) {
      if (p.error != 0) hooks_.failed(p.key, p.error);
      done = true;
    }
    it = done ? pending_.erase(it) : std::next(it);
  }
}

}  // namespace moat::netstack
