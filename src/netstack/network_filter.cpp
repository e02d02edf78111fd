#include "netstack/network_filter.h"

#include <algorithm>
#include <cstring>

#include "net/tls_client_hello.h"
#include "proto/guest_network.h"

namespace moat::netstack {
namespace {

constexpr std::uint8_t kIcmpEchoRequest = 8;
constexpr std::uint8_t kIcmpv6EchoRequest = 128;
constexpr std::uint8_t kIcmpv6RouterSolicit = 133;
constexpr std::uint8_t kIcmpv6NeighborAdvert = 136;
constexpr std::uint16_t kDnsPort = 53;

net::IpAddress address(const char* text) { return *net::IpAddress::parse(text); }

// Sequence space a segment uses: its data, and one each for SYN and FIN.
std::uint32_t seq_length(const net::FrameView& f) {
  return static_cast<std::uint32_t>(f.payload.size()) + ((f.tcp_flags & net::kTcpSyn) ? 1 : 0) +
         ((f.tcp_flags & net::kTcpFin) ? 1 : 0);
}

}  // namespace

NetworkFilter::NetworkFilter(Sinks sinks, std::shared_ptr<const net::Policy> policy, Resolver& resolver,
                             std::uint32_t max_connections, std::set<std::uint16_t> published_udp_ports)
    : sinks_(std::move(sinks)),
      policy_(std::move(policy)),
      resolver_(resolver),
      max_connections_(max_connections),
      published_udp_ports_(std::move(published_udp_ports)),
      gateway4_(address(proto::kGatewayIpv4)),
      gateway6_(address(proto::kGatewayIpv6)),
      resolver4_(address(proto::kResolverIpv4)),
      resolver6_(address(proto::kResolverIpv6)),
      guest4_(address(proto::kGuestIpv4)),
      guest6_(address(proto::kGuestIpv6)),
      link4_(*net::IpPrefix::parse("10.0.2.0/24")),
      link6_(*net::IpPrefix::parse("fd00:6d6f:6174::/64")) {}

std::string NetworkFilter::flow_key(bool tcp, const net::Endpoint& guest, const net::Endpoint& remote) {
  std::string k(1, tcp ? 't' : 'u');
  k.append(reinterpret_cast<const char*>(guest.address.bytes.data()), guest.address.size());
  k.push_back(static_cast<char>(guest.port >> 8));
  k.push_back(static_cast<char>(guest.port));
  k.append(reinterpret_cast<const char*>(remote.address.bytes.data()), remote.address.size());
  k.push_back(static_cast<char>(remote.port >> 8));
  k.push_back(static_cast<char>(remote.port));
  return k;
}

bool NetworkFilter::is_gateway(const net::IpAddress& a) const { return a == gateway4_ || a == gateway6_; }
bool NetworkFilter::is_resolver(const net::IpAddress& a) const { return a == resolver4_ || a == resolver6_; }

// The guest speaks only from its own addresses (and IPv6 link-local ones,
// which neighbour discovery uses): a spoofed source would give the stack
// flows the table does not know.
bool NetworkFilter::source_ok(const net::FrameView& f) const {
  if (f.src == guest4_ || f.src == guest6_) return true;
  static const net::IpPrefix kLinkLocal6 = *net::IpPrefix::parse("fe80::/10");
  return f.l4 == net::L4::kIcmpv6 && (kLinkLocal6.contains(f.src) || f.src == net::IpAddress{net::IpAddress::Family::kV6, {}});
}

net::Verdict NetworkFilter::decide(const net::IpAddress& dst, std::uint16_t port, bool tcp) const {
  // Every other address of the link leads to the host's loopback in the
  // stack (slirp_stack.h), and the resolver's only service is DNS.
  if ((link4_.contains(dst) || link6_.contains(dst)) && !is_gateway(dst)) {
    return net::Verdict{false, -1,
                        is_resolver(dst) ? "the resolver answers DNS over UDP only" : "no such host on the sandbox's link"};
  }
  net::Flow flow;
  flow.dst = dst;
  flow.port = port;
  flow.protocol = tcp ? net::Protocol::kTcp : net::Protocol::kUdp;
  flow.names = resolver_.names_for(dst);
  return policy_->decide(flow);
}

void NetworkFilter::log(const std::string& line) {
  if (!sinks_.log) return;
  auto now = Clock::now();
  if (now - log_second_ >= std::chrono::seconds(1)) {
    if (log_suppressed_ > 0)
      sinks_.log("network: " + std::to_string(log_suppressed_) + " more denials in the last second not logged");
    log_second_ = now;
    log_lines_ = 0;
    log_suppressed_ = 0;
  }
  if (log_lines_ < kLogLinesPerSecond) {
    ++log_lines_;
    sinks_.log(line);
  } else {
    ++log_suppressed_;
  }
}

void NetworkFilter::refuse(const net::FrameView& f, const std::string& why) {
  net::Endpoint dst{f.dst, f.dst_port};
  log(std::string("network: denied ") + (f.l4 == net::L4::kTcp ? "tcp " : "udp ") + net::to_string(dst) + ": " + why);
  if (f.l4 == net::L4::kTcp)
    sinks_.to_guest(net::build_reset_reply(f));
  else
    sinks_.to_guest(net::build_port_unreachable(f));
}

void NetworkFilter::set_egress_limit(std::uint64_t bytes_per_second) {
  egress_rate_ = bytes_per_second;
  egress_tokens_ = egress_burst();  // a full bucket to start with
  egress_refill_ = Clock::now();
}

// A token bucket holding a quarter second of the rate (at least 64 KiB, so
// that one window of a slow rate still passes).
double NetworkFilter::egress_burst() const { return std::max(static_cast<double>(egress_rate_) / 4, 65536.0); }

bool NetworkFilter::take_egress(std::size_t bytes) {
  if (egress_rate_ == 0 || bytes == 0) return true;
  auto now = Clock::now();
  double burst = egress_burst();
  double elapsed = std::chrono::duration<double>(now - egress_refill_).count();
  egress_tokens_ = std::min(burst, egress_tokens_ + elapsed * static_cast<double>(egress_rate_));
  egress_refill_ = now;
  if (egress_tokens_ < static_cast<double>(bytes)) {
    ++counters_.over_rate;
    return false;
  }
  egress_tokens_ -= static_cast<double>(bytes);
  return true;
}

void NetworkFilter::from_guest(Frame frame) {
  auto parsed = net::parse_frame(frame);
  if (!parsed) {
    ++counters_.dropped;
    return;
  }
  const net::FrameView& f = *parsed;
  if (f.l3 == net::L3::kArp) {
    sinks_.to_stack(frame);
    return;
  }
  if ((f.l3 != net::L3::kIpv4 && f.l3 != net::L3::kIpv6) || f.fragment || !source_ok(f)) {
    ++counters_.dropped;
    return;
  }
  switch (f.l4) {
    case net::L4::kTcp: from_guest_tcp(f, frame); break;
    case net::L4::kUdp: from_guest_udp(f, frame); break;
    case net::L4::kIcmp:
    case net::L4::kIcmpv6: from_guest_icmp(f, frame); break;
    default: ++counters_.dropped; break;
  }
}

void NetworkFilter::from_guest_icmp(const net::FrameView& f, Frame frame) {
  bool ok = false;
  if (f.l4 == net::L4::kIcmpv6)
    ok = (f.icmp_type >= kIcmpv6RouterSolicit && f.icmp_type <= kIcmpv6NeighborAdvert) ||
         (f.icmp_type == kIcmpv6EchoRequest && (is_gateway(f.dst) || is_resolver(f.dst)));
  else
    ok = f.icmp_type == kIcmpEchoRequest && (is_gateway(f.dst) || is_resolver(f.dst));
  // Echo elsewhere would make the stack open ICMP sockets the policy has no
  // say over: the gateway answers pings, nothing further does.
  if (ok)
    sinks_.to_stack(frame);
  else
    ++counters_.dropped;
}

// A new flow the guest asks for: decided, counted against the limit, and
// entered in the table; refused (end()) otherwise.
NetworkFilter::FlowMap::iterator NetworkFilter::open_flow(const net::FrameView& f, const std::string& key, bool tcp) {
  net::Verdict v = decide(f.dst, f.dst_port, tcp);
  if (!v.allowed) {
    ++counters_.denied;
    refuse(f, v.reason);
    return flows_.end();
  }
  if (flows_.size() >= max_connections_) {
    ++counters_.refused_over_limit;
    refuse(f, "the sandbox has " + std::to_string(max_connections_) + (tcp ? " connections" : " flows") +
                  " open (--max-connections)");
    return flows_.end();
  }
  FlowState s;
  s.guest_mac = f.src_mac;
  s.gateway_mac = f.dst_mac;
  s.guest = {f.src, f.src_port};
  s.remote = {f.dst, f.dst_port};
  s.tcp = tcp;
  if (tcp && v.rule >= 0) {
    auto kind = policy_->rules()[static_cast<std::size_t>(v.rule)].kind;
    s.check_server_name = kind == net::Rule::TargetKind::kDomain || kind == net::Rule::TargetKind::kSuffix;
  }
  return flows_.emplace(key, s).first;
}

void NetworkFilter::from_guest_udp(const net::FrameView& f, Frame frame) {
  net::Endpoint guest{f.src, f.src_port}, remote{f.dst, f.dst_port};
  if (is_resolver(f.dst) && f.dst_port == kDnsPort) {
    ++counters_.dns_queries;
    // Bounded by the resolver: a question is answered now or within its
    // timeout, and at most kMaxPending wait.
    if (dns_replies_.size() > Resolver::kMaxPending * 2) return;
    Resolver::ReplyTag tag = next_tag_++;
    dns_replies_[tag] = DnsReply{f.src_mac, f.dst_mac, guest, remote};
    if (!resolver_.on_query(f.payload, tag)) dns_replies_.erase(tag);
    return;
  }
  if (address_groups(f.dst) & net::kGroupMulticast) {
    ++counters_.dropped;  // no one to refuse to: broadcasts and multicast go nowhere
    return;
  }
  std::string key = flow_key(false, guest, remote);
  auto it = flows_.find(key);
  if (it == flows_.end() && quic_blocked_ports_.count(f.dst_port)) {
    // QUIC would carry TLS past the interceptor: refused at once, so
    // clients fall back to TCP without waiting.
    ++counters_.denied;
    refuse(f, "UDP to a port whose TLS is intercepted (QUIC; clients fall back to TCP)");
    return;
  }
  if (it == flows_.end() && (it = open_flow(f, key, false)) == flows_.end()) return;
  it->second.last_seen = Clock::now();
  if (take_egress(f.payload.size())) sinks_.to_stack(frame);
}

void NetworkFilter::from_guest_tcp(const net::FrameView& f, Frame frame) {
  net::Endpoint guest{f.src, f.src_port}, remote{f.dst, f.dst_port};
  std::string key = flow_key(true, guest, remote);
  auto it = flows_.find(key);
  bool opening = (f.tcp_flags & net::kTcpSyn) && !(f.tcp_flags & net::kTcpAck);
  if (it == flows_.end()) {
    if (!opening) {
      // The stack resets segments of connections it does not have, and
      // answers inbound ones (published ports) itself.
      sinks_.to_stack(frame);
      return;
    }
    if (redirects_.count(key)) {
      refuse(f, "the port belongs to an intercepted connection");
      return;
    }
    if ((it = open_flow(f, key, true)) == flows_.end()) return;
    if (sinks_.intercept && sinks_.intercept(InterceptRequest{key, guest, remote})) {
      FlowState& s = it->second;
      s.held_syn.assign(frame.begin(), frame.end());
      s.guest_next_seq = f.seq + 1;
      s.last_seen = Clock::now();
      return;
    }
  }
  FlowState& s = it->second;
  if (!s.held_syn.empty()) {
    // Its way is not ready: the guest sends the SYN again, or gives up.
    if (f.tcp_flags & net::kTcpRst) forget(it);
    return;
  }
  if (!take_egress(f.payload.size())) return;  // resent later, as if lost
  if (s.check_server_name && !f.payload.empty()) {
    s.check_server_name = false;
    if (server_name_denied(f)) {
      // The stack has not seen these bytes: both resets use the sequence
      // numbers from before them.
      FlowState closing = s;
      forget(it);
      close_flow(closing);
      return;
    }
  }
  s.last_seen = Clock::now();
  s.guest_next_seq = f.seq + seq_length(f);
  if (f.tcp_flags & net::kTcpAck) s.guest_acked = f.ack;
  if (f.tcp_flags & net::kTcpFin) {
    s.guest_fin = true;
    // The guest closes second, having seen the stack's FIN: the stack goes
    // to TIME_WAIT when it acks this one.
    s.guest_fin_acked_stack_fin =
        s.stack_fin && (f.tcp_flags & net::kTcpAck) && static_cast<std::int32_t>(f.ack - s.stack_fin_end) >= 0;
  }
  bool done = (f.tcp_flags & net::kTcpRst) || (s.guest_fin && s.stack_fin);
  std::optional<net::Endpoint> redirect = s.redirect;
  // The stack may answer at once (from_stack), and that may end the flow:
  // nothing of the table is held across the call.
  if (redirect)
    to_stack_redirected(frame, *redirect);
  else
    sinks_.to_stack(frame);
  if (done) {
    if (auto at = flows_.find(key); at != flows_.end()) forget(at);
  }
  release_time_waits();
}

void NetworkFilter::to_stack_redirected(Frame frame, const net::Endpoint& to) {
  std::vector<std::uint8_t> copy(frame.begin(), frame.end());
  auto view = net::parse_frame(copy);
  if (!view) return;
  net::rewrite_tcp_endpoint(copy, *view, false, to);
  sinks_.to_stack(copy);
}

bool NetworkFilter::intercept_ready(const std::string& key, const net::Endpoint& stack_side) {
  auto it = flows_.find(key);
  if (it == flows_.end() || it->second.held_syn.empty()) return false;
  FlowState& s = it->second;
  s.redirect = stack_side;
  redirects_[flow_key(true, s.guest, stack_side)] = key;
  std::vector<std::uint8_t> syn = std::move(s.held_syn);
  s.held_syn.clear();
  to_stack_redirected(syn, stack_side);
  return true;
}

void NetworkFilter::intercept_failed(const std::string& key, int error) {
  auto it = flows_.find(key);
  if (it == flows_.end() || it->second.held_syn.empty()) return;
  std::vector<std::uint8_t> syn = std::move(it->second.held_syn);
  net::Endpoint remote = it->second.remote;
  forget(it);
  auto view = net::parse_frame(syn);
  if (!view) return;
  log("network: tcp " + net::to_string(remote) + ": " + std::strerror(error));
  sinks_.to_guest(net::build_reset_reply(*view));
}

NetworkFilter::FlowMap::iterator NetworkFilter::forget(FlowMap::iterator it) {
  if (it->second.redirect) redirects_.erase(flow_key(true, it->second.guest, *it->second.redirect));
  return flows_.erase(it);
}

// A connection a domain rule allowed, whose first bytes are a TLS
// ClientHello naming a server: the name must be allowed too, or a guest
// could reach any site behind an address it was given for another name.
bool NetworkFilter::server_name_denied(const net::FrameView& f) {
  net::ServerName sni = net::read_server_name(f.payload);
  if (sni.kind != net::ServerName::Kind::kName) return false;  // not visible: the address decided
  net::Flow flow;
  flow.dst = f.dst;
  flow.port = f.dst_port;
  flow.protocol = net::Protocol::kTcp;
  flow.names = {sni.name};
  net::Verdict v = policy_->decide(flow);
  if (v.allowed) return false;
  ++counters_.denied;
  log("network: denied tcp " + net::to_string({f.dst, f.dst_port}) + ": its TLS server name \"" + sni.name +
      "\" is not allowed (" + v.reason + ")");
  return true;
}

void NetworkFilter::from_stack(std::span<std::uint8_t> frame) {
  auto parsed = net::parse_frame(frame);
  if (!parsed || parsed->fragment) return;
  const net::FrameView& f = *parsed;
  net::Endpoint guest{f.dst, f.dst_port}, remote{f.src, f.src_port};
  if (f.l4 == net::L4::kTcp) {
    std::string key = flow_key(true, guest, remote);
    auto it = flows_.find(key);
    if (it == flows_.end()) {
      // An intercepted connection: the guest hears from the address it
      // connected to.
      auto r = redirects_.find(key);
      if (r == redirects_.end() || (it = flows_.find(r->second)) == flows_.end()) return;
      net::rewrite_tcp_endpoint(frame, f, true, it->second.remote);
    }
    FlowState& s = it->second;
    s.last_seen = Clock::now();
    if ((f.tcp_flags & (net::kTcpSyn | net::kTcpAck)) == (net::kTcpSyn | net::kTcpAck)) s.established = true;
    if (!(f.tcp_flags & net::kTcpRst)) s.stack_max_window = std::max(s.stack_max_window, f.window);
    if ((f.tcp_flags & net::kTcpFin) && !s.stack_fin) {
      s.stack_fin = true;
      s.stack_fin_end = f.seq + static_cast<std::uint32_t>(f.payload.size()) + 1;
    }
    if (s.guest_fin_acked_stack_fin && (f.tcp_flags & (net::kTcpSyn | net::kTcpFin | net::kTcpRst | net::kTcpAck)) ==
                                           net::kTcpAck &&
        f.ack == s.guest_next_seq && f.window == s.stack_max_window)
      note_time_wait(s);
    if ((f.tcp_flags & net::kTcpRst) || (s.guest_fin && s.stack_fin)) forget(it);
  } else if (f.l4 == net::L4::kUdp && published_udp_ports_.count(f.dst_port)) {
    // A datagram to a published port: the guest may answer its sender.
    std::string key = flow_key(false, guest, remote);
    auto it = flows_.find(key);
    if (it == flows_.end()) {
      if (flows_.size() >= max_connections_) return;
      FlowState s;
      s.guest_mac = f.dst_mac;
      s.gateway_mac = f.src_mac;
      s.guest = guest;
      s.remote = remote;
      s.tcp = false;
      s.inbound = true;
      it = flows_.emplace(key, s).first;
    }
    it->second.last_seen = Clock::now();
  }
}

// The stack has acked the guest's FIN, which acked the stack's own, with
// its whole window: its TIME_WAIT holds nothing that is still owed to
// anyone (see the header). A reset in window (the sequence number after
// the guest's FIN) ends it.
void NetworkFilter::note_time_wait(const FlowState& s) {
  time_wait_resets_.push_back(net::build_tcp_segment(s.guest_mac, s.gateway_mac, s.guest, stack_remote(s),
                                                     s.guest_next_seq, 0, net::kTcpRst, 0));
}

void NetworkFilter::release_time_waits() {
  while (!time_wait_resets_.empty()) {
    auto resets = std::move(time_wait_resets_);
    time_wait_resets_.clear();
    for (const auto& rst : resets) {
      sinks_.to_stack(rst);
      ++counters_.time_waits_released;
    }
  }
}

void NetworkFilter::close_flow(const FlowState& s) {
  if (!s.tcp) return;  // the next datagram is decided again
  // To the guest: a reset its stack accepts (in window: the sequence
  // number it expects next, which is the last ack it sent; before the
  // handshake, an ACK of its SYN).
  if (s.established)
    sinks_.to_guest(net::build_tcp_segment(s.gateway_mac, s.guest_mac, s.remote, s.guest, s.guest_acked, 0,
                                           net::kTcpRst, 0));
  else
    sinks_.to_guest(net::build_tcp_segment(s.gateway_mac, s.guest_mac, s.remote, s.guest, 0, s.guest_next_seq,
                                           net::kTcpRst | net::kTcpAck, 0));
  // To the stack, as if from the guest, so that it closes the host socket.
  auto rst = net::build_tcp_segment(s.guest_mac, s.gateway_mac, s.guest, stack_remote(s), s.guest_next_seq, 0,
                                    net::kTcpRst, 0);
  sinks_.to_stack(rst);
}

void NetworkFilter::set_policy(std::shared_ptr<const net::Policy> policy) {
  policy_ = std::move(policy);
  resolver_.set_policy(policy_.get());
  // Taken out of the table first: the resets reach the stack, whose
  // answers come back through from_stack while this runs.
  std::vector<std::pair<FlowState, std::string>> closing;
  for (auto it = flows_.begin(); it != flows_.end();) {
    const FlowState& s = it->second;
    net::Verdict v = s.inbound ? net::Verdict{true, -1, ""} : decide(s.remote.address, s.remote.port, s.tcp);
    if (v.allowed) {
      ++it;
      continue;
    }
    closing.emplace_back(s, v.reason);
    it = forget(it);
  }
  for (const auto& [s, reason] : closing) {
    log(std::string("network: closed ") + (s.tcp ? "tcp " : "udp ") + net::to_string(s.remote) +
        " after the policy changed: " + reason);
    close_flow(s);
  }
}

void NetworkFilter::answer_dns(Resolver::ReplyTag tag, std::vector<std::uint8_t> message) {
  auto it = dns_replies_.find(tag);
  if (it == dns_replies_.end()) return;
  const DnsReply& r = it->second;
  sinks_.to_guest(net::build_udp_datagram(r.resolver_mac, r.guest_mac, r.resolver, r.guest, message));
  dns_replies_.erase(it);
}

void NetworkFilter::expire(Clock::time_point now) {
  for (auto it = flows_.begin(); it != flows_.end();) {
    const FlowState& s = it->second;
    auto idle = now - s.last_seen;
    bool old = !s.tcp ? idle >= kUdpIdle : (!s.established ? idle >= kTcpConnecting : idle >= kTcpIdle);
    it = old ? forget(it) : std::next(it);
  }
}

}  // namespace moat::netstack
