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
// The link is virtual and the stack behind it ends every TCP connection
// and UDP flow, so its MTU is not a path MTU: the host's kernel segments and
// fragments for the real network. Under emulation the guest's cost is per
// frame, so a larger MTU moves more per frame; the filter drops IP
// fragments, so it is also the largest datagram that crosses (4108 bytes,
// room for EDNS's 4096). Why 4136: libslirp gives each connection socket
// buffers of 8192 bytes rounded up to a whole segment. An IPv4 MSS of 4096
// keeps two segments in flight in those 8 KiB; a larger MSS would leave one
// (stop-and-wait uploads) and grow every connection's buffers, which
// TIME_WAIT holds 10 s after each close (131 KiB a connection at 65520).
inline constexpr int kGuestMtu = 4136;

// The name the resolver answers with the gateway addresses.
inline constexpr char kHostAlias[] = "host.moat.internal";

}  // namespace moat::proto
