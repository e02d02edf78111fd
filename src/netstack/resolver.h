// The sandbox's resolver: the only DNS server the guest is given
// (proto::kResolverIpv4/6). It answers from what the host decided and
// remembers what it answered, because domain rules are enforced on those
// answers (policy.h: Flow::names).
//
//  - host.moat.internal: the gateway addresses (the host's loopback).
//  - --add-host names: their addresses, as given.
//  - A name the policy denies: NXDOMAIN, without asking anyone.
//  - Other A and AAAA questions: asked of the upstream resolver (the host's
//    or --dns) with a fresh id; its addresses pass the rebinding check
//    (Policy::answer_allowed) and are pinned to the name and its aliases.
//  - Other record types: an empty answer (the sandbox needs addresses only).
//
// Bounded against a hostile guest: at most kMaxPending questions wait for
// the upstream (more get SERVFAIL at once), at most kMaxPins name-address
// pairs are remembered (the oldest go first), and the TTL the guest gets
// never outlives the pin, so a connection made from a cached answer still
// finds its name.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/dns_message.h"
#include "net/ip_address.h"
#include "net/packet.h"
#include "net/policy.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::netstack {

using UpstreamResolver = net::Endpoint;

// The host's resolver: the first nameserver of `resolv_conf` (a file's
// text), or nullopt.
std::optional<UpstreamResolver> upstream_from_resolv_conf(std::string_view resolv_conf);

class Resolver {
 public:
  using Clock = std::chrono::steady_clock;
  // Where an answer goes: what the caller needs to send it back, opaque here.
  using ReplyTag = std::uint64_t;
  using Answer = std::function<void(ReplyTag tag, std::vector<std::uint8_t> message)>;
  // A line for the sandbox's network log (denied and dropped names).
  using Log = std::function<void(const std::string&)>;

  static constexpr std::size_t kMaxPending = 256;
  static constexpr std::size_t kMaxPins = 8192;
  static constexpr std::chrono::seconds kUpstreamTimeout{3};
  // Pins outlive the TTL they were answered with by at least this much,
  // and answers carry at most kMaxAnswerTtl.
  static constexpr std::chrono::seconds kMinPinLife{600};
  static constexpr std::uint32_t kMaxAnswerTtl = 300;

  Resolver(const net::Policy* policy, std::vector<std::pair<std::string, std::vector<net::IpAddress>>> hosts,
           std::optional<UpstreamResolver> upstream, Answer answer, Log log);

  // The policy decisions read (it may be replaced between calls).
  void set_policy(const net::Policy* policy) { policy_ = policy; }

  // A guest's question (the UDP payload). The answer may come now or later
  // (through `answer`); a message that is no question is dropped, and then
  // (only then) this returns false.
  bool on_query(std::span<const std::uint8_t> message, ReplyTag tag);

  // The upstream socket (-1 before the first forwarded question).
  int upstream_fd() const { return upstream_.get(); }
  void on_upstream_readable();
  // Answers SERVFAIL to questions that waited too long, forgets old pins.
  void expire(Clock::time_point now);
  // When expire() next has work (nullopt: never).
  std::optional<Clock::time_point> next_deadline() const;

  // Every name this sandbox's resolver tied to `address`: pins, --add-host
  // and host.moat.internal.
  std::vector<std::string> names_for(const net::IpAddress& address) const;

  std::size_t pending() const { return pending_.size(); }
  std::size_t pins() const { return pins_.size(); }

 private:
  struct Pending {
    net::DnsQuery guest_query;     // as the guest asked (its id)
    net::DnsQuery upstream_query;  // as we asked (our id)
    ReplyTag tag = 0;
    Clock::time_point deadline;
  };
  struct Pin {
    std::string name;
    net::IpAddress address;
    Clock::time_point expires;
  };

  static std::string key_of(const net::IpAddress& a) {
    return std::string(reinterpret_cast<const char*>(a.bytes.data()), a.size()) + (a.is_v4() ? "4" : "6");
  }

  const std::vector<net::IpAddress>* static_addresses(const std::string& name) const;
  void answer_from_upstream(Pending& p, const net::DnsAnswer& answer);
  void forward(const net::DnsQuery& q, ReplyTag tag);
  Status open_upstream();
  void pin(const std::string& name, const net::IpAddress& address, Clock::time_point expires);
  std::uint16_t fresh_id();

  const net::Policy* policy_;
  std::vector<std::pair<std::string, std::vector<net::IpAddress>>> static_;  // host alias + --add-host
  std::optional<UpstreamResolver> upstream_addr_;
  Answer answer_;
  Log log_;
  UniqueFd upstream_;
  std::map<std::uint16_t, Pending> pending_;
  std::list<Pin> pins_;  // oldest first
  std::unordered_multimap<std::string, std::list<Pin>::iterator> pins_by_address_;
  std::uint32_t id_state_ = 0;
  static constexpr std::chrono::seconds kPinSweep{60};
  Clock::time_point next_pin_sweep_{};  // the first expire() after a pin sweeps
};

}  // namespace moat::netstack
