// Network policy: what a sandbox's guest may reach, decided on the host for
// every connection and every name lookup before anything is opened.
//
//   --net none|public|all        the mode: the default when no rule matches
//   --allow RULE / --deny RULE   in the order given; the first match wins
//   RULE = TARGET[:PORT|:LO-HI][/tcp|/udp]
//   TARGET = IPv4 | [IPv6] | CIDR (10.0.0.0/8, [fd00::]/8) | domain |
//            *.suffix (the apex and its subdomains) |
//            @public @private @loopback @link-local @metadata @multicast @host
//
// The guest is hostile, so nothing it says is believed:
//  - A domain rule matches a connection only through the names this
//    sandbox's own resolver (or --add-host) tied to the destination address
//    (Flow::names), never through a name the guest claims.
//  - Address groups are judged by where an address really leads: an IPv6
//    address embedding an IPv4 one is in that address's groups too
//    (ip_address.h), and an IPv4 rule never matches an IPv6 destination.
//  - `public` (the default) is the public internet only: no loopback,
//    private, link-local, metadata, multicast or reserved address, and not
//    the host (host.moat.internal) unless a rule allows it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/ip_address.h"
#include "util/result.h"

namespace moat::net {

enum class NetMode { kNone, kPublic, kAll };
enum class Protocol { kAny, kTcp, kUdp };

// "none", "public", "all"; EINVAL naming the choices otherwise.
Result<NetMode> parse_net_mode(std::string_view text);
const char* to_string(NetMode mode);

struct Rule {
  enum class TargetKind { kAddress, kPrefix, kDomain, kSuffix, kGroup };
  bool allow = true;
  TargetKind kind = TargetKind::kAddress;
  IpPrefix prefix;           // kAddress (full length), kPrefix
  std::string domain;        // kDomain, kSuffix: lower case, no trailing dot
  std::uint32_t group = 0;   // kGroup: AddressGroup bits, or kGroupHost
  bool host_group = false;   // kGroup: @host
  std::uint16_t port_lo = 1, port_hi = 65535;
  Protocol protocol = Protocol::kAny;

  bool all_ports() const { return port_lo == 1 && port_hi == 65535; }
  // The rule as it would be written (normalised: "[::1]:80/tcp").
  std::string to_string() const;
};

// Parses one RULE. Errors (EINVAL) quote the rule and say what is wrong.
Result<Rule> parse_rule(std::string_view text, bool allow);

// Lengths the parser accepts (RFC 1035 names, a bounded rule).
inline constexpr std::size_t kMaxRuleBytes = 512;
inline constexpr std::size_t kMaxDomainBytes = 253;

// A connection or datagram flow the guest asks for.
struct Flow {
  IpAddress dst;
  std::uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
  // Names this sandbox's resolver answered with `dst`, or that --add-host
  // maps to it (lower case, no trailing dot). Empty: a bare address.
  std::vector<std::string> names;
};

struct Verdict {
  bool allowed = false;
  int rule = -1;       // index of the deciding rule; -1: the mode decided
  std::string reason;  // for the log: the rule as written, or the mode and why
};

class Policy {
 public:
  Policy() = default;
  Policy(NetMode mode, std::vector<Rule> rules, std::vector<IpAddress> host_addresses = {})
      : mode_(mode), rules_(std::move(rules)), host_addresses_(std::move(host_addresses)) {}

  NetMode mode() const { return mode_; }
  const std::vector<Rule>& rules() const { return rules_; }

  // May the guest open this flow?
  Verdict decide(const Flow& flow) const;
  // May the guest's resolver answer `name`? Denied names get NXDOMAIN. Only
  // domain rules decide here, and a deny rule only when it covers every
  // port and protocol (a name denied on one port may be used on another);
  // with no such rule, names resolve unless the mode is none.
  Verdict decide_name(std::string_view name) const;
  // May the guest open a tunnel to HOST:PORT through an HTTP proxy it was
  // allowed to reach (CONNECT, docs/tls.md)? An address is judged as a
  // direct TCP connection to it would be. A name is judged by the domain
  // rules alone, the first that matches it on that port, then the mode
  // (none refuses): where the proxy takes a name, only the proxy knows.
  // A host that is neither an address nor a valid name is refused.
  Verdict decide_tunnel(std::string_view host, std::uint16_t port) const;
  // DNS rebinding: may an answer tie `name` to `address`? A public address
  // always; any other only when a rule allows it explicitly (by address,
  // prefix or group, or a domain rule allowing `name`).
  bool answer_allowed(std::string_view name, const IpAddress& address) const;

 private:
  bool target_matches(const Rule& r, const IpAddress& dst, const std::vector<std::string>& names) const;
  bool is_host(const IpAddress& a) const;

  NetMode mode_ = NetMode::kPublic;
  std::vector<Rule> rules_;
  std::vector<IpAddress> host_addresses_;  // what host.moat.internal resolves to
};

// A normalised domain name: 1 to 253 bytes of labels of 1 to 63 letters,
// digits, '-' and '_', no label starting or ending with '-'.
bool valid_domain_name(std::string_view name);

// A port: 1 to 65535 in decimal, nothing else (no sign, no spaces). The one
// reader of ports for rules, --dns and -p.
std::optional<std::uint16_t> read_port_number(std::string_view text);

// Lower case without a trailing dot: the form names are compared in.
std::string normalize_name(std::string_view name);
// Does `name` (normalised) equal `suffix` or end with "." + suffix?
bool name_in_suffix(std::string_view name, std::string_view suffix);

// A host pattern (--tls-bypass, --secret's hosts) normalised: a domain
// name, or "*." and one (the apex and its subdomains); nullopt when the
// name is not a valid domain name.
std::optional<std::string> normalize_host_pattern(std::string_view text);

}  // namespace moat::net
