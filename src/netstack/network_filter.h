// The enforcement point of a sandbox's network: every frame the guest sends
// passes here before the user-mode stack sees it, and the policy decides on
// each new flow (a TCP SYN, a UDP flow's first datagram) before the stack
// opens a host socket for it.
//
// What it does with a guest frame:
//  - ARP and IPv6 neighbour discovery: to the stack (the link needs them).
//  - DNS to the resolver address: to the sandbox's resolver (resolver.h).
//  - A new TCP connection or UDP flow: decided (policy.h). Denied: a reset
//    (TCP) or ICMP port unreachable (UDP) at once, so the guest's connect()
//    fails with ECONNREFUSED instead of hanging, and a line for the log.
//  - A frame of a known flow, or a TCP segment of no flow (the stack resets
//    those itself, and answers inbound connections to published ports): to
//    the stack.
//  - Anything else is dropped: fragments (the stack would reassemble what
//    the filter could not judge), spoofed source addresses, ICMP other than
//    echo to the gateway, unknown protocols, frames that do not parse.
//
// The guest is hostile: the flow table is bounded (max_connections flows;
// past it new flows are refused like denied ones), flows the stack or the
// guest ended are forgotten, and idle ones expire.
//
// TIME_WAIT: when the remote closes first (an HTTP/1.0 server, most
// short requests), the stack ends in TIME_WAIT for 10 s, keeping the
// connection's buffers and a place in the socket list it walks on every
// event. A guest opening connections quickly would make both grow with its
// rate, past max_connections, which counts only open flows. The link to the
// guest neither loses nor reorders frames, so once the stack has acked the
// guest's FIN with its whole receive window free (nothing of the guest's
// data still waits for the host), the filter resets the stack's side, as if
// from the guest. The guest's side is already closed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "net/packet.h"
#include "net/policy.h"
#include "netstack/resolver.h"

namespace moat::netstack {

class NetworkFilter {
 public:
  using Clock = std::chrono::steady_clock;
  using Frame = std::span<const std::uint8_t>;

  // A TCP connection the policy allowed, offered for TLS interception
  // (docs/tls.md) before the stack sees it.
  struct InterceptRequest {
    std::string key;  // for intercept_ready / intercept_failed
    net::Endpoint guest, remote;
  };

  struct Sinks {
    std::function<void(Frame)> to_stack;                  // guest frames the policy passed
    std::function<void(std::vector<std::uint8_t>)> to_guest;  // resets, ICMP errors, DNS answers
    std::function<void(const std::string&)> log;          // denials, for the sandbox's log
    // Optional. True takes the connection: its SYN is held until
    // intercept_ready or intercept_failed says where it goes.
    std::function<bool(const InterceptRequest&)> intercept;
  };

  static constexpr std::chrono::seconds kUdpIdle{120};
  static constexpr std::chrono::seconds kTcpConnecting{80};
  static constexpr std::chrono::hours kTcpIdle{2};
  // Denial lines per second; the rest are counted in one summary line.
  static constexpr int kLogLinesPerSecond = 20;

  NetworkFilter(Sinks sinks, std::shared_ptr<const net::Policy> policy, Resolver& resolver,
                std::uint32_t max_connections, std::set<std::uint16_t> published_udp_ports);

  void from_guest(Frame frame);
  // A frame the stack sends the guest, seen on its way (the caller
  // delivers it): flows the remote ended, inbound datagrams of published
  // UDP ports. A frame of an intercepted connection is rewritten in place
  // to come from the address the guest connected to.
  void from_stack(std::span<std::uint8_t> frame);

  // An intercepted connection's way is ready: the held SYN goes to the
  // stack addressed to `stack_side` (the gateway and the port of a
  // listener on the host's loopback), and every frame of the connection
  // is rewritten between the two addresses for its whole life. False if
  // the connection is gone (the policy closed it, it expired).
  bool intercept_ready(const std::string& key, const net::Endpoint& stack_side);
  // Connecting for it failed with `error`: the guest gets a reset, as it
  // would from the stack, and a line says why.
  void intercept_failed(const std::string& key, int error);

  // Replaces the policy; open flows it denies are closed now (TCP: a reset
  // to both the guest and the stack).
  void set_policy(std::shared_ptr<const net::Policy> policy);
  const net::Policy& policy() const { return *policy_; }

  // The resolver's answer for the question sent with `tag`.
  void answer_dns(Resolver::ReplyTag tag, std::vector<std::uint8_t> message);

  // Guest-to-world payload bytes per second over all flows (0: no limit).
  // Past the rate, data segments and datagrams are dropped: TCP resends
  // and slows down, which is what makes the rate hold.
  void set_egress_limit(std::uint64_t bytes_per_second);

  // While TLS on these ports is intercepted, new UDP flows to them (QUIC)
  // are refused like denied ones.
  void block_quic(std::set<std::uint16_t> ports) { quic_blocked_ports_ = std::move(ports); }

  void expire(Clock::time_point now);

  // Sends the stack the resets that end its TIME_WAITs (see
  // note_time_wait); the caller runs this once the stack has returned.
  void release_time_waits();
  std::size_t flows() const { return flows_.size(); }

  struct Counters {
    std::uint64_t denied = 0, dropped = 0, refused_over_limit = 0, dns_queries = 0, over_rate = 0;
    std::uint64_t time_waits_released = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  struct FlowState {
    net::MacAddress guest_mac, gateway_mac;
    net::Endpoint guest, remote;
    bool tcp = true;
    bool inbound = false;       // opened from the host (a published UDP port)
    bool established = false;   // TCP: the stack answered the SYN
    bool guest_fin = false, stack_fin = false;
    // Allowed by a domain rule: the first data must not name (TLS SNI) a
    // server the policy denies.
    bool check_server_name = false;
    std::uint32_t guest_next_seq = 0;  // TCP: the guest's next sequence number
    std::uint32_t guest_acked = 0;     // TCP: the last ack the guest sent
    // TCP, for releasing the stack's TIME_WAIT (release_time_wait): where
    // the stack's FIN ends, whether the guest's FIN acked it, and the
    // largest window the stack offered (its whole buffer, empty).
    std::uint32_t stack_fin_end = 0;
    bool guest_fin_acked_stack_fin = false;
    std::uint16_t stack_max_window = 0;
    // TLS interception: the SYN held while the connection's way is made,
    // then the stack's side of it (intercept_ready).
    std::vector<std::uint8_t> held_syn;
    std::optional<net::Endpoint> redirect;
    Clock::time_point last_seen;
  };
  using FlowMap = std::map<std::string, FlowState>;
  struct DnsReply {
    net::MacAddress guest_mac, resolver_mac;
    net::Endpoint guest, resolver;
  };

  static std::string flow_key(bool tcp, const net::Endpoint& guest, const net::Endpoint& remote);
  net::Verdict decide(const net::IpAddress& dst, std::uint16_t port, bool tcp) const;
  bool source_ok(const net::FrameView& f) const;
  bool is_resolver(const net::IpAddress& a) const;
  bool is_gateway(const net::IpAddress& a) const;
  void from_guest_tcp(const net::FrameView& f, Frame frame);
  void from_guest_udp(const net::FrameView& f, Frame frame);
  FlowMap::iterator open_flow(const net::FrameView& f, const std::string& key, bool tcp);
  void from_guest_icmp(const net::FrameView& f, Frame frame);
  void refuse(const net::FrameView& f, const std::string& why);
  bool server_name_denied(const net::FrameView& f);
  void close_flow(const FlowState& s);
  void note_time_wait(const FlowState& s);
  static const net::Endpoint& stack_remote(const FlowState& s) { return s.redirect ? *s.redirect : s.remote; }
  void to_stack_redirected(Frame frame, const net::Endpoint& to);
  FlowMap::iterator forget(FlowMap::iterator it);
  void log(const std::string& line);
  bool take_egress(std::size_t bytes);
  double egress_burst() const;

  Sinks sinks_;
  std::shared_ptr<const net::Policy> policy_;
  Resolver& resolver_;
  std::uint32_t max_connections_;
  std::set<std::uint16_t> published_udp_ports_;
  std::set<std::uint16_t> quic_blocked_ports_;
  FlowMap flows_;
  // The stack's key of an intercepted connection (the guest and the
  // listener) to its key in flows_ (the guest and the remote).
  std::map<std::string, std::string> redirects_;
  // Resets for the stack, held until it has returned from the frame it is
  // answering (it is not reentrant).
  std::vector<std::vector<std::uint8_t>> time_wait_resets_;
  std::map<Resolver::ReplyTag, DnsReply> dns_replies_;
  Resolver::ReplyTag next_tag_ = 1;
  net::IpAddress gateway4_, gateway6_, resolver4_, resolver6_, guest4_, guest6_;
  net::IpPrefix link4_, link6_;
  Counters counters_;
  std::uint64_t egress_rate_ = 0;  // bytes per second; 0: none
  double egress_tokens_ = 0;
  Clock::time_point egress_refill_{};
  Clock::time_point log_second_{};
  int log_lines_ = 0;
  std::uint64_t log_suppressed_ = 0;
};

}  // namespace moat::netstack
