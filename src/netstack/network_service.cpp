#include "netstack/network_service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "netstack/intercept_redirect.h"
#include "netstack/network_filter.h"
#include "netstack/resolver.h"
#include "netstack/slirp_stack.h"
#include "proto/guest_network.h"
#include "tls/interceptor.h"

namespace moat::netstack {
namespace {

using Clock = std::chrono::steady_clock;
// Where plain HTTP is intercepted for :http secrets.
constexpr std::uint16_t kPlainHttpPort = 80;

std::optional<UpstreamResolver> host_resolver() {
  std::ifstream in("/etc/resolv.conf");
  std::stringstream text;
  text << in.rdbuf();
  return upstream_from_resolv_conf(text.str());
}

int ms_until(Clock::time_point when) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(when - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left + 1, 1 << 30));
}

void lower_timeout(int& timeout, int candidate) {
  if (candidate >= 0 && (timeout < 0 || candidate < timeout)) timeout = candidate;
}

}  // namespace

struct NetworkService::Impl {
  Log log;
  UniqueFd qemu;
  UniqueFd wake;  // eventfd: a policy to apply, or stop
  std::unique_ptr<SlirpStack> stack;
  std::unique_ptr<Resolver> resolver;
  std::unique_ptr<NetworkFilter> filter;
  // TLS interception (docs/tls.md); null when the sandbox does not intercept.
  TlsInterception tls_settings;
  std::vector<tls::SecretBinding> secrets;  // for the interception decision
  std::unique_ptr<tls::Interceptor> interceptor;
  std::unique_ptr<InterceptRedirect> redirect;
  std::vector<net::ProxyAddress> proxies;  // --tls-proxy
  // The policy as the interceptor's thread sees it (tunnel targets).
  mutable std::mutex policy_mu;
  std::shared_ptr<const net::Policy> policy;  // under policy_mu
  // The stack's entries in this round's poll set, for is_stack_socket.
  const std::vector<pollfd>* round_fds = nullptr;
  std::size_t stack_begin = 0, stack_end = 0;

  // Frames from QEMU not yet whole, and frames for it not yet written.
  std::vector<std::uint8_t> in;
  std::size_t in_used = 0;
  std::vector<std::uint8_t> out;
  std::size_t out_sent = 0;
  std::uint64_t dropped_to_guest = 0;  // since the last report
  std::function<void()> on_thread_start;  // NetworkService::start's
  // Written by the network thread only, read by any (NetworkService::traffic).
  std::atomic<std::uint64_t> tx_bytes{0}, rx_bytes{0}, tx_packets{0}, rx_packets{0};
  std::atomic<std::uint64_t> open_flows{0};  // the filter's, as of the last round

  std::mutex mu;
  std::condition_variable applied;
  std::shared_ptr<const net::Policy> next_policy;  // under mu
  std::optional<PortSet> next_listening;            // under mu
  std::uint64_t requested = 0, done = 0;            // under mu
  std::atomic<bool> stop{false};
  std::thread thread;
  // --publish-listening, on the network thread: where, the host ports -p
  // holds for TCP (left alone), and what is published now.
  std::optional<net::IpAddress> listen_ip;
  PortSet fixed_tcp_ports;
  PortSet mirrored;
  Clock::time_point next_expiry;

  // Queues a frame for QEMU; where it was placed, or nullopt if dropped.
  std::optional<std::span<std::uint8_t>> to_guest(std::span<const std::uint8_t> frame) {
    if (out.size() - out_sent + frame.size() + 4 > kMaxGuestQueue) {
      ++dropped_to_guest;
      return std::nullopt;
    }
    std::uint32_t be = htonl(static_cast<std::uint32_t>(frame.size()));
    auto* p = reinterpret_cast<const std::uint8_t*>(&be);
    out.insert(out.end(), p, p + 4);
    out.insert(out.end(), frame.begin(), frame.end());
    rx_bytes.fetch_add(frame.size(), std::memory_order_relaxed);
    rx_packets.fetch_add(1, std::memory_order_relaxed);
    return std::span<std::uint8_t>(out).last(frame.size());
  }

  void flush() {
    while (out_sent < out.size()) {
      ssize_t n = ::send(qemu.get(), out.data() + out_sent, out.size() - out_sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n <= 0) break;
      out_sent += static_cast<std::size_t>(n);
    }
    if (out_sent == out.size()) {
      out.clear();
      out_sent = 0;
    } else if (out_sent > (1u << 20)) {
      out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(out_sent));
      out_sent = 0;
    }
  }

  // Reads what QEMU sent and passes each whole frame through the filter.
  // False when the network is over (QEMU gone, or a length it cannot have
  // written).
  bool read_qemu() {
    for (int round = 0; round < 16; ++round) {
      if (in.size() - in_used < kMaxFrame + 4) in.resize(in_used + 4 * (kMaxFrame + 4));
      ssize_t n = ::recv(qemu.get(), in.data() + in_used, in.size() - in_used, MSG_DONTWAIT);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      in_used += static_cast<std::size_t>(n);
      std::size_t at = 0;
      while (in_used - at >= 4) {
        std::uint32_t len;
        std::memcpy(&len, in.data() + at, 4);
        len = ntohl(len);
        if (len > kMaxFrame) {
          log("network: QEMU sent a frame of " + std::to_string(len) + " bytes; the network is stopped");
          return false;
        }
        if (in_used - at - 4 < len) break;
        filter->from_guest({in.data() + at + 4, len});
        tx_bytes.fetch_add(len, std::memory_order_relaxed);
        tx_packets.fetch_add(1, std::memory_order_relaxed);
        at += 4 + len;
      }
      std::memmove(in.data(), in.data() + at, in_used - at);
      in_used -= at;
      if (static_cast<std::size_t>(n) < (kMaxFrame + 4)) break;  // drained for now
    }
    return true;
  }

  // libslirp allocates two socket buffers per connection and frees them
  // only when the connection has left TIME_WAIT (10 s after its close).
  // glibc keeps what was freed in the arena it came from, so a burst of
  // short connections left the shim holding what the burst used at its
  // peak (21 MiB after 3000 sequential connections, 7 MiB once trimmed;
  // 227 MiB with an MTU of 65520 and its larger buffers).
  // Trimming returns the free pages of every arena to the kernel.
  static void release_freed_memory() { ::malloc_trim(0); }

  // Frames are dropped only when QEMU has stopped reading (the guest does
  // not empty its receive ring); said once per 10 s at most.
  void report_drops() {
    if (dropped_to_guest == 0) return;
    log("network: " + std::to_string(dropped_to_guest) +
        " frames to the guest dropped in the last 10 s: its receive queue was full");
    dropped_to_guest = 0;
  }

  // Publishes the guest's new listening ports and closes the ones it left
  // (existing connections stay). A port that cannot be opened is logged
  // and tried again at the next change.
  void apply_pending_listening() {
    std::optional<PortSet> ports;
    {
      std::lock_guard<std::mutex> lock(mu);
      ports.swap(next_listening);
    }
    if (!ports || !listen_ip) return;
    for (auto it = mirrored.begin(); it != mirrored.end();) {
      if (ports->count(*it)) {
        ++it;
        continue;
      }
      stack->remove_forward(*listen_ip, *it, false);
      log("network: guest port " + std::to_string(*it) + " no longer listens; unpublished");
      it = mirrored.erase(it);
    }
    std::size_t skipped = 0;
    for (auto port : *ports) {
      if (mirrored.count(port) || fixed_tcp_ports.count(port)) continue;
      if (mirrored.size() >= kMaxListeningForwards) {
        ++skipped;
        continue;
      }
      auto st = stack->add_forward(*listen_ip, port, port, false);
      if (!st) {
        log("network: guest port " + std::to_string(port) + " listens but is not published: " + st.error().message);
        continue;
      }
      mirrored.insert(port);
      log("network: guest port " + std::to_string(port) + " listens; published at " +
          net::to_string(net::Endpoint{*listen_ip, port}));
    }
    if (skipped)
      log("network: " + std::to_string(skipped) + " more listening guest ports not published (at most " +
          std::to_string(kMaxListeningForwards) + ")");
  }

  void apply_pending_policy() {
    std::shared_ptr<const net::Policy> p;
    std::uint64_t generation;
    {
      std::lock_guard<std::mutex> lock(mu);
      p = std::move(next_policy);
      generation = requested;
    }
    if (p) {
      {
        std::lock_guard<std::mutex> lock(policy_mu);
        policy = p;
      }
      filter->set_policy(std::move(p));
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      done = generation;
    }
    applied.notify_all();
  }

  // Whether `remote` is a proxy of --tls-proxy: by address, or by a name
  // the resolver tied to the address (host.moat.internal among them).
  template <class Names>
  bool is_declared_proxy(const net::Endpoint& remote, Names& names_of_remote) const {
    for (const auto& p : proxies) {
      if (p.port != remote.port) continue;
      if (p.address) {
        if (*p.address == remote.address) return true;
        continue;
      }
      const auto& names = names_of_remote();
      if (std::find(names.begin(), names.end(), p.host) != names.end()) return true;
    }
    return false;
  }

  // Why the policy refuses a tunnel to host:port through a declared proxy;
  // "" when it does not. On the interceptor's thread.
  std::string tunnel_refusal(const std::string& host, std::uint16_t port) const {
    std::shared_ptr<const net::Policy> p;
    {
      std::lock_guard<std::mutex> lock(policy_mu);
      p = policy;
    }
    if (!p) return "";
    net::Verdict v = p->decide_tunnel(host, port);
    return v.allowed ? "" : v.reason;
  }

  // Whether the filter hands this connection to the interceptor.
  bool intercept(const NetworkFilter::InterceptRequest& r) {
    if (!redirect) return false;
    // The names the resolver tied to the address, looked up once, and only
    // when a decision needs them (every allowed SYN comes through here).
    std::optional<std::vector<std::string>> names_cache;
    auto names_of_remote = [&]() -> const std::vector<std::string>& {
      if (!names_cache) names_cache = resolver->names_for(r.remote.address);
      return *names_cache;
    };
    if (is_declared_proxy(r.remote, names_of_remote)) {
      redirect->begin(r.key, r.guest, r.remote, {}, true);
      return true;
    }
    // Plain HTTP to a host a :http secret is bound to.
    if (r.remote.port == kPlainHttpPort) {
      for (const auto& name : names_of_remote())
        for (const auto& s : secrets)
          if (s.plain_http && tls::secret_bound_to(s, name)) {
            redirect->begin(r.key, r.guest, r.remote, name);
            return true;
          }
    }
    const auto& ports = tls_settings.ports;
    if (std::find(ports.begin(), ports.end(), r.remote.port) == ports.end()) return false;
    const auto& names = names_of_remote();
    // Without --tls-intercept, only the hosts a secret is bound to.
    if (!tls_settings.enabled) {
      bool bound = std::any_of(secrets.begin(), secrets.end(), [&](const tls::SecretBinding& s) {
        return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return tls::secret_bound_to(s, n); });
      });
      if (!bound) return false;
    }
    redirect->begin(r.key, r.guest, r.remote);
    return true;
  }

  // Whether `peer` is the local address of one of the stack's sockets: what
  // connects to an interception listener must be the stack itself.
  bool is_stack_socket(const sockaddr_storage& peer) const {
    auto wanted = net::endpoint_of(peer);
    if (!round_fds || !wanted) return false;
    for (std::size_t i = stack_begin; i < stack_end && i < round_fds->size(); ++i) {
      sockaddr_storage local{};
      socklen_t len = sizeof local;
      if (::getsockname((*round_fds)[i].fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) continue;
      auto mine = net::endpoint_of(local);
      if (mine && mine->address == wanted->address && mine->port == wanted->port) return true;
    }
    return false;
  }

  void run() {
    std::vector<pollfd> fds;
    bool qemu_open = true;
    next_expiry = Clock::now() + std::chrono::seconds(10);
    while (!stop.load()) {
      fds.clear();
      short qemu_events = qemu_open ? static_cast<short>(POLLIN | (out.size() > out_sent ? POLLOUT : 0)) : 0;
      fds.push_back(pollfd{qemu.get(), qemu_events, 0});
      fds.push_back(pollfd{wake.get(), POLLIN, 0});
      fds.push_back(pollfd{resolver->upstream_fd(), POLLIN, 0});
      int timeout = ms_until(next_expiry);
      if (auto due = resolver->next_deadline()) lower_timeout(timeout, ms_until(*due));
      bool stack_running = out.size() - out_sent < kPauseStack;
      stack_begin = fds.size();
      if (stack_running) stack->fill(fds, timeout);
      stack_end = fds.size();
      if (redirect) redirect->fill(fds, timeout);
      round_fds = &fds;
      int n = ::poll(fds.data(), fds.size(), timeout);
      bool failed = n < 0 && errno != EINTR;
      if (fds[1].revents & POLLIN) {
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(wake.get(), &count, sizeof count);
        apply_pending_policy();
      }
      if (qemu_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) qemu_open = read_qemu();
      if (stack_running) stack->dispatch(fds, failed);
      if (redirect) redirect->dispatch(fds);
      stack->run_timers();
      // After the stack's round: its sockets change only between rounds.
      apply_pending_listening();
      filter->release_time_waits();
      if (fds[2].fd >= 0 && (fds[2].revents & POLLIN)) resolver->on_upstream_readable();
      auto now = Clock::now();
      resolver->expire(now);
      if (now >= next_expiry) {
        filter->expire(now);
        release_freed_memory();
        report_drops();
        next_expiry = now + std::chrono::seconds(10);
      }
      if (qemu_open) flush();
      open_flows.store(filter->flows(), std::memory_order_relaxed);
    }
  }
};

NetworkService::NetworkService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

namespace {

// The interceptor and the redirect in front of it: the CA the sandbox was
// created with, one key for every leaf, the host's roots and the user's.
Status start_interception(NetworkService::Impl& impl, const TlsInterception& settings,
                          NetworkService::Secrets secrets) {
  auto ca = tls::CertificateAuthority::load(settings.ca_certificate_file, settings.ca_key_file);
  if (!ca) return ca.error().wrap("TLS interception");
  MOAT_ASSIGN_OR_RETURN(auto key, tls::generate_p256_key());
  tls::InterceptorOptions options;
  options.upstream_ca_file = settings.upstream_ca_file;
  options.secrets = secrets.bindings;
  options.bypass = settings.bypass;  // normalized by read_network_settings
  options.on_violation = std::move(secrets.on_violation);
  options.tls_ports = settings.ports;
  options.intercept_all = settings.enabled;
  options.on_thread_start = impl.on_thread_start;
  for (const auto& text : settings.proxies) {
    MOAT_ASSIGN_OR_RETURN(auto proxy, net::read_proxy_address(text));
    impl.proxies.push_back(std::move(proxy));
  }
  impl.secrets = std::move(secrets.bindings);
  NetworkService::Impl* raw = &impl;
  options.tunnel_refusal = [raw](const std::string& host, std::uint16_t port) { return raw->tunnel_refusal(host, port); };
  auto interceptor = tls::Interceptor::start(tls::LeafCache(std::move(*ca), std::move(key)), options,
                                             [raw](const std::string& line) { raw->log(line); });
  if (!interceptor) return interceptor.error().wrap("TLS interception");
  impl.interceptor = std::move(*interceptor);
  impl.tls_settings = settings;
  impl.filter->block_quic(std::set<std::uint16_t>(settings.ports.begin(), settings.ports.end()));
  impl.redirect = std::make_unique<InterceptRedirect>(
      InterceptRedirect::Hooks{
          [raw](const std::string& key, const net::Endpoint& side) { return raw->filter->intercept_ready(key, side); },
          [raw](const std::string& key, int error) { raw->filter->intercept_failed(key, error); },
          [raw](const sockaddr_storage& peer) { return raw->is_stack_socket(peer); },
          [raw](tls::InterceptedConnection c) { raw->interceptor->add(std::move(c)); },
          [raw](const std::string& line) { raw->log(line); }},
      *net::IpAddress::parse(proto::kGatewayIpv4), *net::IpAddress::parse(proto::kGatewayIpv6));
  return ok_status();
}

}  // namespace

Result<std::unique_ptr<NetworkService>> NetworkService::start(const net::NetworkSettings& settings, Log log,
                                                              UniqueFd& qemu_end, Secrets secrets,
                                                              std::function<void()> on_thread_start) {
  auto impl = std::make_unique<Impl>();
  impl->on_thread_start = std::move(on_thread_start);
  impl->log = std::move(log);
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return errno_error("network socketpair");
  impl->qemu.reset(pair[0]);
  qemu_end.reset(pair[1]);
  // Room for bursts both ways: a socket buffer of a few frames would make
  // every frame a wake-up of both processes.
  int size = 4 << 20;
  for (int fd : pair) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  impl->wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->wake) return errno_error("network eventfd");

  Impl* raw = impl.get();
  MOAT_ASSIGN_OR_RETURN(impl->stack, SlirpStack::create(SlirpStack::Callbacks{
                                         [raw](std::span<const std::uint8_t> frame) {
                                           // Queued first: the filter may rewrite it in place.
                                           if (auto placed = raw->to_guest(frame)) {
                                             raw->filter->from_stack(*placed);
                                           } else {
                                             std::vector<std::uint8_t> dropped(frame.begin(), frame.end());
                                             raw->filter->from_stack(dropped);
                                           }
                                         },
                                         [raw](const std::string& msg) { raw->log("network: guest error: " + msg); }}));
  for (const auto& f : settings.forwards)
    MOAT_TRY(impl->stack->add_forward(f.host_ip, f.host_port, f.guest_port, f.udp));

  std::optional<UpstreamResolver> upstream = settings.dns ? settings.dns : host_resolver();
  impl->resolver = std::make_unique<Resolver>(
      settings.policy.get(), settings.hosts, upstream,
      [raw](Resolver::ReplyTag tag, std::vector<std::uint8_t> message) {
        raw->filter->answer_dns(tag, std::move(message));
      },
      [raw](const std::string& line) { raw->log("network: " + line); });
  std::set<std::uint16_t> udp_ports;
  for (const auto& f : settings.forwards)
    if (f.udp) udp_ports.insert(f.guest_port);
  impl->filter = std::make_unique<NetworkFilter>(
      NetworkFilter::Sinks{[raw](std::span<const std::uint8_t> frame) { raw->stack->input(frame); },
                           [raw](std::vector<std::uint8_t> frame) { raw->to_guest(frame); },
                           [raw](const std::string& line) { raw->log(line); },
                           [raw](const NetworkFilter::InterceptRequest& r) { return raw->intercept(r); }},
      settings.policy, *impl->resolver, settings.max_connections, std::move(udp_ports));
  impl->filter->set_egress_limit(settings.egress_bytes_per_second);
  impl->listen_ip = settings.publish_listening;
  for (const auto& f : settings.forwards)
    if (!f.udp) impl->fixed_tcp_ports.insert(f.host_port);
  impl->policy = settings.policy;
  if (settings.tls.enabled || !secrets.bindings.empty())
    MOAT_TRY(start_interception(*impl, settings.tls, std::move(secrets)));
  impl->thread = std::thread([raw] {
    if (raw->on_thread_start) raw->on_thread_start();
    raw->run();
  });
  return std::unique_ptr<NetworkService>(new NetworkService(std::move(impl)));
}

NetworkService::~NetworkService() {
  if (!impl_) return;
  impl_->stop.store(true);
  std::uint64_t one = 1;
  [[maybe_unused]] auto w = ::write(impl_->wake.get(), &one, sizeof one);
  if (impl_->thread.joinable()) impl_->thread.join();
}

NetworkService::Traffic NetworkService::traffic() const {
  Traffic t;
  t.tx_bytes = impl_->tx_bytes.load(std::memory_order_relaxed);
  t.rx_bytes = impl_->rx_bytes.load(std::memory_order_relaxed);
  t.tx_packets = impl_->tx_packets.load(std::memory_order_relaxed);
  t.rx_packets = impl_->rx_packets.load(std::memory_order_relaxed);
  t.open_flows = impl_->open_flows.load(std::memory_order_relaxed);
  return t;
}

void NetworkService::publish_listening(PortSet ports) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->next_listening = std::move(ports);
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto w = ::write(impl_->wake.get(), &one, sizeof one);
}

void NetworkService::update_policy(std::shared_ptr<const net::Policy> policy) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->next_policy = std::move(policy);
  std::uint64_t mine = ++impl_->requested;
  std::uint64_t one = 1;
  [[maybe_unused]] auto w = ::write(impl_->wake.get(), &one, sizeof one);
  impl_->applied.wait(lock, [&] { return impl_->done >= mine || impl_->stop.load(); });
}

}  // namespace moat::netstack
