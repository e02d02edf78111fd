// A sandbox's network: what its guest may reach, which names it may
// resolve, and which of its ports the host publishes (docs/network.md).
//
//   moat::NetworkOptions net;
//   net.mode = moat::NetworkMode::kNone;
//   net.rules.push_back({.allow = true, .rule = "*.pypi.org:443"});
//   net.hosts.push_back({.name = "db.test", .address = "host-gateway"});
//   net.ports.push_back({.host_port = 8080, .guest_port = 80});
//
// The host decides everything; the guest's word counts for nothing. Rules
// are kept as written (the CLI form) and checked by validate_network() and
// again by the sandbox's shim before it applies them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "moat/result.h"

namespace moat {

// What the guest reaches when no rule matches: nothing, the public internet
// only (no loopback, private, link-local, metadata, multicast or reserved
// address, and not the host), or everything.
enum class NetworkMode { kNone, kPublic, kAll };
const char* to_string(NetworkMode mode);
// "none", "public" or "all"; EINVAL naming the choices otherwise.
Result<NetworkMode> parse_network_mode(std::string_view text);

// One --allow or --deny: RULE = TARGET[:PORT|:LO-HI][/tcp|/udp]; TARGET =
// IPv4 | [IPv6] | CIDR | domain | *.suffix | @public @private @loopback
// @link-local @metadata @multicast @host.
struct NetworkRule {
  bool allow = true;
  std::string rule;
};

// --add-host NAME:IP. The guest's resolver answers NAME with `address`;
// domain rules match NAME. `address` is an IPv4 address, an IPv6 one (with
// or without brackets), or "host-gateway" (the address host.moat.internal
// resolves to).
struct HostEntry {
  std::string name;
  std::string address;
};

// -p [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]. Published ports are reached from
// the host; the egress policy does not apply to them.
struct PublishedPort {
  std::string host_ip = "127.0.0.1";  // IPv4 or IPv6 (brackets in the CLI form)
  std::uint16_t host_port = 0;
  std::uint16_t guest_port = 0;
  bool udp = false;
};
Result<PublishedPort> parse_published_port(std::string_view text);
std::string to_string(const PublishedPort& port);

inline constexpr std::uint32_t kDefaultMaxConnections = 1024;
inline constexpr std::uint32_t kMaxMaxConnections = 65536;
// At most this many rules: a sandbox's whole list travels to its shim in one
// message (`moat network update`), well under the protocol's 1 MiB frame.
inline constexpr std::size_t kMaxNetworkRules = 1024;

// TLS interception (docs/tls.md): the sandbox's shim ends the guest's TLS
// on these ports with certificates of the sandbox's CA, which the guest is
// made to trust, and opens verified TLS of its own to the real server.
inline constexpr std::size_t kMaxTlsPorts = 64;
inline constexpr std::size_t kMaxTlsBypass = 1024;
inline constexpr std::size_t kMaxTlsProxies = 16;
struct TlsInterception {
  bool enabled = false;                    // --tls-intercept
  std::vector<std::uint16_t> ports{443};   // --tls-ports 443,8443
  // --tls-bypass: connections to a NAME (or any name under *.suffix, the
  // apex included) are left alone (clients that pin certificates).
  std::vector<std::string> bypass;
  // --tls-proxy HOST:PORT: an HTTP proxy the guest is told to use (its
  // HTTPS_PROXY). Connections to it must open a tunnel with CONNECT; the
  // tunnel's target meets the policy, and its TLS is intercepted as a
  // direct connection's would be. HOST: a name, an IPv4 address, [IPv6],
  // or host.moat.internal.
  std::vector<std::string> proxies;
  // --tls-upstream-ca: PEM roots trusted for servers besides the host's.
  std::string upstream_ca_file;
  // --tls-ca-cert/--tls-ca-key: the CA to sign with; empty: the
  // installation's ($MOAT_HOME/tls, made on first use). A created sandbox
  // keeps the absolute paths of the pair it uses.
  std::string ca_certificate_file, ca_key_file;
};

struct NetworkOptions {
  NetworkMode mode = NetworkMode::kPublic;
  std::vector<NetworkRule> rules;  // in order; the first match wins
  std::vector<HostEntry> hosts;
  // The upstream resolver, IP[:PORT] ("[IPv6]:PORT" with a port); empty:
  // the host's (the first nameserver of /etc/resolv.conf).
  std::string dns;
  std::vector<PublishedPort> ports;
  // --publish-listening IP: every TCP port the guest listens on (on an
  // address other than its loopback) is published at the same port of this
  // host address while it listens ("0.0.0.0", "::", "127.0.0.1"); a port of
  // `ports` keeps its own entry. Empty: only `ports` are published.
  std::string publish_listening;
  // Guest connections and UDP flows open at once (1 to kMaxMaxConnections).
  std::uint32_t max_connections = kDefaultMaxConnections;
  // Guest-to-world bytes per second over all flows; 0: no limit.
  std::uint64_t egress_bytes_per_second = 0;
  TlsInterception tls;
};

// What `moat network update` changes in a sandbox's NetworkOptions
// (Sandbox::update_network, update_sandbox_network): the mode if given, and
// the whole rule list, replaced (an empty list removes every rule). Hosts,
// resolver, ports and limits stay as create set them.
struct NetworkPolicyUpdate {
  std::optional<NetworkMode> mode;  // unset: keep the sandbox's
  std::vector<NetworkRule> rules;
};

// Checks every rule, host entry, resolver and port; EINVAL with the exact
// reason ("bad rule \"::1\": IPv6 addresses go in brackets, ...").
Status validate_network(const NetworkOptions& options);

// Whether the guest gets a network device at all: not for `none` with no
// allow rule and no published port.
bool network_needs_device(const NetworkOptions& options);

}  // namespace moat
