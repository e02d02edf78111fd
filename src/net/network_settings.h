// A sandbox's network options (moat/network.h, kept as the user wrote them)
// read into what the shim applies: the policy, the resolver's fixed names,
// the upstream resolver, the published ports. The one reader of those
// options: libmoat checks them with it when a sandbox is created, and the
// shim reads them again when it starts.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "moat/network.h"
#include "net/ip_address.h"
#include "net/packet.h"
#include "net/policy.h"
#include "util/result.h"

namespace moat::net {

struct PortForward {
  IpAddress host_ip;
  std::uint16_t host_port = 0;
  std::uint16_t guest_port = 0;
  bool udp = false;
};

struct NetworkSettings {
  std::shared_ptr<const Policy> policy;
  // --add-host, in order (the last entry of a name wins).
  std::vector<std::pair<std::string, std::vector<IpAddress>>> hosts;
  std::optional<Endpoint> dns;  // nullopt: the host's resolver
  std::vector<PortForward> forwards;
  // --publish-listening: where the guest's listening TCP ports are
  // published while it listens; nullopt: nowhere.
  std::optional<IpAddress> publish_listening;
  std::uint32_t max_connections = kDefaultMaxConnections;
  std::uint64_t egress_bytes_per_second = 0;
  // TLS interception; bypass patterns normalized (lower case, no trailing
  // dot; "*.suffix" kept as written).
  TlsInterception tls;
};


// The gateway's addresses, both of which lead to the host's loopback
// (127.0.0.1 and ::1): what the policy calls @host.
std::vector<IpAddress> host_gateway_addresses();
// What host.moat.internal and an --add-host of host-gateway resolve to: the
// IPv4 gateway only. Clients that take the first address (busybox wget)
// would otherwise try ::1 first, where most host servers do not listen;
// [fd00:6d6f:6174::2] reaches the host's ::1 when that is wanted.
std::vector<IpAddress> host_gateway_names_addresses();

// The policy of `mode` and `rules`; EINVAL with the parser's exact reason.
Result<std::shared_ptr<const Policy>> read_policy(NetworkMode mode, const std::vector<NetworkRule>& rules);

// A port (read_port_number); the error quotes `flag` and `text`.
Result<std::uint16_t> read_port(std::string_view flag, std::string_view text, std::string_view port);
// An address with or without brackets around an IPv6 one.
std::optional<IpAddress> read_address(std::string_view text);

// --tls-proxy HOST:PORT: the host (a name lower case without a trailing
// dot, or an address without brackets) and the port.
struct ProxyAddress {
  std::string host;
  std::uint16_t port = 0;
  std::optional<IpAddress> address;  // `host` when it is an address
  // "proxy.example:3128", "[fd00::1]:8080": the normalized form.
  std::string to_string() const;
};
Result<ProxyAddress> read_proxy_address(std::string_view text);

// --dns: IP, IP:PORT, [IPv6] or [IPv6]:PORT (port 53 when none).
Result<Endpoint> read_dns_server(std::string_view text);
// --add-host NAME:IP: the addresses NAME resolves to (IPv4, IPv6 with or
// without brackets, or "host-gateway": the gateway's two).
Result<std::vector<IpAddress>> read_host_entry(const HostEntry& entry);
// -p: each published port checked, none twice.
Result<std::vector<PortForward>> read_port_forwards(const std::vector<PublishedPort>& ports);

// Everything; EINVAL naming the first thing that is wrong.
Result<NetworkSettings> read_network_settings(const NetworkOptions& options);

}  // namespace moat::net
