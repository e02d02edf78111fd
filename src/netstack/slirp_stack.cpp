#include "netstack/slirp_stack.h"

#include <arpa/inet.h>
#include <slirp/libslirp.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/packet.h"
#include "proto/guest_network.h"

namespace moat::netstack {

// libslirp's C callbacks, each forwarding to the stack passed as `opaque`.
struct SlirpCallbacks {
  static SlirpStack& stack(void* opaque) { return *static_cast<SlirpStack*>(opaque); }

  static ssize_t send_packet(const void* buf, size_t len, void* opaque) {
    stack(opaque).callbacks_.to_guest({static_cast<const std::uint8_t*>(buf), len});
    return static_cast<ssize_t>(len);
  }
  static void guest_error(const char* msg, void* opaque) {
    if (auto& f = stack(opaque).callbacks_.guest_error) f(msg);
  }
  static std::int64_t clock_get_ns(void*) { return SlirpStack::now_ms() * 1000000; }
  static void* timer_new_opaque(SlirpTimerId id, void* cb_opaque, void* opaque) {
    auto& timers = stack(opaque).timers_;
    timers.push_back(SlirpStack::Timer{static_cast<int>(id), cb_opaque, -1});
    return &timers.back();
  }
  static void timer_free(void* timer, void* opaque) {
    stack(opaque).timers_.remove_if([&](const SlirpStack::Timer& t) { return &t == timer; });
  }
  static void timer_mod(void* timer, std::int64_t expire_ms, void*) {
    static_cast<SlirpStack::Timer*>(timer)->expire_ms = expire_ms;
  }
  static void register_poll_fd(int, void*) {}
  static void unregister_poll_fd(int, void*) {}
  static void notify(void*) {}

  static int add_poll(int fd, int events, void* opaque) {
    auto& s = stack(opaque);
    short e = 0;
    if (events & SLIRP_POLL_IN) e |= POLLIN;
    if (events & SLIRP_POLL_OUT) e |= POLLOUT;
    if (events & SLIRP_POLL_PRI) e |= POLLPRI;
    s.fds_->push_back(pollfd{fd, e, 0});
    return static_cast<int>(s.fds_->size() - 1 - s.first_fd_);
  }
  static int get_revents(int idx, void* opaque) {
    auto& s = stack(opaque);
    std::size_t at = s.first_fd_ + static_cast<std::size_t>(idx);
    if (idx < 0 || at >= s.fds_->size()) return 0;
    short r = (*s.fds_)[at].revents;
    int out = 0;
    if (r & POLLIN) out |= SLIRP_POLL_IN;
    if (r & POLLOUT) out |= SLIRP_POLL_OUT;
    if (r & POLLPRI) out |= SLIRP_POLL_PRI;
    if (r & POLLERR) out |= SLIRP_POLL_ERR;
    if (r & POLLHUP) out |= SLIRP_POLL_HUP;
    return out;
  }
};

namespace {

in_addr v4(const char* text) {
  in_addr a{};
  ::inet_pton(AF_INET, text, &a);
  return a;
}

in6_addr v6(const char* text) {
  in6_addr a{};
  ::inet_pton(AF_INET6, text, &a);
  return a;
}

}  // namespace

std::int64_t SlirpStack::now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Result<std::unique_ptr<SlirpStack>> SlirpStack::create(Callbacks callbacks) {
  std::unique_ptr<SlirpStack> s(new SlirpStack(std::move(callbacks)));
  SlirpConfig cfg{};
  cfg.version = 4;
  cfg.in_enabled = true;
  cfg.vnetwork = v4("10.0.2.0");
  cfg.vnetmask = v4("255.255.255.0");
  cfg.vhost = v4(proto::kGatewayIpv4);
  cfg.vdhcp_start = v4(proto::kGuestIpv4);
  cfg.vnameserver = v4(proto::kResolverIpv4);
  cfg.in6_enabled = true;
  cfg.vprefix_addr6 = v6("fd00:6d6f:6174::");
  cfg.vprefix_len = static_cast<std::uint8_t>(proto::kGuestIpv6Prefix);
  cfg.vhost6 = v6(proto::kGatewayIpv6);
  cfg.vnameserver6 = v6(proto::kResolverIpv6);
  cfg.if_mtu = proto::kGuestMtu;
  cfg.if_mru = proto::kGuestMtu;
  cfg.disable_dns = true;
  cfg.disable_dhcp = true;
  cfg.enable_emu = false;
  static const SlirpCb kCallbacks = [] {
    SlirpCb cb{};
    cb.send_packet = SlirpCallbacks::send_packet;
    cb.guest_error = SlirpCallbacks::guest_error;
    cb.clock_get_ns = SlirpCallbacks::clock_get_ns;
    cb.timer_free = SlirpCallbacks::timer_free;
    cb.timer_mod = SlirpCallbacks::timer_mod;
    cb.register_poll_fd = SlirpCallbacks::register_poll_fd;
    cb.unregister_poll_fd = SlirpCallbacks::unregister_poll_fd;
    cb.notify = SlirpCallbacks::notify;
    cb.timer_new_opaque = SlirpCallbacks::timer_new_opaque;
    return cb;
  }();
  s->slirp_ = slirp_new(&cfg, &kCallbacks, s.get());
  if (!s->slirp_) return make_error("libslirp could not be set up", ENOMEM);
  return s;
}

SlirpStack::~SlirpStack() {
  if (slirp_) slirp_cleanup(slirp_);
}

void SlirpStack::input(std::span<const std::uint8_t> frame) {
  slirp_input(slirp_, frame.data(), static_cast<int>(frame.size()));
}

Status SlirpStack::add_forward(const net::IpAddress& host_ip, std::uint16_t host_port, std::uint16_t guest_port,
                               bool udp) {
  // The guest's end: its own address of the host side's family.
  net::Endpoint guest_end{*net::IpAddress::parse(host_ip.is_v4() ? proto::kGuestIpv4 : proto::kGuestIpv6), guest_port};
  sockaddr_storage host{}, guest{};
  socklen_t len = net::to_sockaddr(net::Endpoint{host_ip, host_port}, host);
  net::to_sockaddr(guest_end, guest);
  int flags = (udp ? SLIRP_HOSTFWD_UDP : 0) | (host_ip.is_v4() ? 0 : SLIRP_HOSTFWD_V6ONLY);
  errno = 0;
  if (slirp_add_hostxfwd(slirp_, reinterpret_cast<sockaddr*>(&host), len, reinterpret_cast<sockaddr*>(&guest), len,
                         flags) < 0) {
    int err = errno ? errno : EADDRINUSE;
    return make_error("publish " + net::to_string(net::Endpoint{host_ip, host_port}) + (udp ? "/udp" : "") + ": " +
                          std::strerror(err),
                      err);
  }
  return ok_status();
}

void SlirpStack::remove_forward(const net::IpAddress& host_ip, std::uint16_t host_port, bool udp) {
  sockaddr_storage host{};
  socklen_t len = net::to_sockaddr(net::Endpoint{host_ip, host_port}, host);
  int flags = (udp ? SLIRP_HOSTFWD_UDP : 0) | (host_ip.is_v4() ? 0 : SLIRP_HOSTFWD_V6ONLY);
  slirp_remove_hostxfwd(slirp_, reinterpret_cast<sockaddr*>(&host), len, flags);
}

void SlirpStack::fill(std::vector<pollfd>& fds, int& timeout_ms) {
  fds_ = &fds;
  first_fd_ = fds.size();
  std::uint32_t timeout = timeout_ms < 0 ? UINT32_MAX : static_cast<std::uint32_t>(timeout_ms);
  slirp_pollfds_fill(slirp_, &timeout, SlirpCallbacks::add_poll, this);
  std::int64_t now = now_ms();
  for (const Timer& t : timers_) {
    if (t.expire_ms < 0) continue;
    std::int64_t left = std::max<std::int64_t>(0, t.expire_ms - now);
    if (left < timeout) timeout = static_cast<std::uint32_t>(left);
  }
  timeout_ms = timeout == UINT32_MAX ? -1 : static_cast<int>(std::min<std::uint32_t>(timeout, 1u << 30));
  fds_ = nullptr;
}

void SlirpStack::dispatch(const std::vector<pollfd>& fds, bool poll_failed) {
  fds_ = const_cast<std::vector<pollfd>*>(&fds);
  slirp_pollfds_poll(slirp_, poll_failed ? 1 : 0, SlirpCallbacks::get_revents, this);
  fds_ = nullptr;
}

void SlirpStack::run_timers() {
  std::int64_t now = now_ms();
  for (auto it = timers_.begin(); it != timers_.end();) {
    Timer& t = *it++;  // the callback may free this timer
    if (t.expire_ms >= 0 && t.expire_ms <= now) {
      t.expire_ms = -1;
      slirp_handle_timer(slirp_, static_cast<SlirpTimerId>(t.id), t.cb_opaque);
    }
  }
}

}  // namespace moat::netstack
