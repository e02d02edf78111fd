// The guest's side of the sandbox network: fixed addresses on a link that
// exists only between the guest and its shim (docs/network.md). Both ends
// need them: the agent configures eth0 with them when the kernel command
// line says moat.net=1, and the shim's user-mode stack answers as the
// gateway and the resolver.
#pragma once

namespace moat::proto {

// IPv4: 10.0.2.0/24, as QEMU's user network, so guides written for it apply.
inline constexpr char kGuestIpv4[] = "10.0.2.15";
inline constexpr int kGuestIpv4Prefix = 24;
inline constexpr char kGatewayIpv4[] = "10.0.2.2";   // host.moat.internal: the host's loopback
inline constexpr char kResolverIpv4[] = "10.0.2.3";  // the sandbox's resolver

// IPv6: a unique local prefix ("moat" in its bytes). The address is set
// without duplicate address detection, so it is usable at once.
inline constexpr char kGuestIpv6[] = "fd00:6d6f:6174::15";
inline constexpr int kGuestIpv6Prefix = 64;
inline constexpr char kGatewayIpv6[] = "fd00:6d6f:6174::2";
inline constexpr char kResolverIpv6[] = "fd00:6d6f:6174::3";

// The agent gives the guest its addresses as host addresses (/32, /128)
// and the gateway as an on-link next hop. So every packet, even one for
// another address of the link's prefix, goes to the gateway, where the
// filter refuses it at once; on a /24 the guest would first ask by ARP for
// a neighbour that never answers, and a connect() would fail only after
// seconds ("No route to host").
inline constexpr int kGuestIpv4HostPrefix = 32;
inline constexpr int kGuestIpv6HostPrefix = 128;

inline constexpr char kGuestMac[] = "52:54:00:12:34:56";
inline constexpr int kGuestMtu = 1500;

// The name the resolver answers with the gateway addresses.
inline constexpr char kHostAlias[] = "host.moat.internal";

}  // namespace moat::proto
