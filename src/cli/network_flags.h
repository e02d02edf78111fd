// The network flags of `moat run` / `moat create` (docs/network.md):
//   --net none|public|all                 what happens when no rule matches
//   --allow RULE, --deny RULE             repeatable; kept in the order typed, the first match wins
//   --add-host NAME:IP                    IP: IPv4, IPv6 (brackets optional) or host-gateway
//   --dns IP[:PORT]                       "[IPv6]:PORT" with a port
//   -p, --publish [HOST_IP:]HOST_PORT:GUEST_PORT[/udp], --publish-listening HOST_IP
//   --max-connections N, --egress-rate RATE (bytes per second: 10m)
//   --tls-intercept, --tls-ports LIST, --tls-bypass PATTERN, --tls-proxy HOST:PORT,
//   --tls-upstream-ca FILE,
//   --tls-ca-cert FILE --tls-ca-key FILE  (docs/tls.md)
// and of `moat network update` (--net, --allow and --deny only).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "moat/network.h"

namespace moat::cli {

struct NetworkFlags {
  std::string net;                 // empty: not given
  std::vector<NetworkRule> rules;  // --allow and --deny, in command-line order
  std::vector<std::string> hosts;
  std::string dns;
  std::vector<std::string> publish;
  std::string publish_listening;
  std::string max_connections;     // empty: the default
  std::string egress_rate;         // empty: no limit
  bool tls_intercept = false;
  std::string tls_ports;           // "443,8443"; empty: 443
  std::vector<std::string> tls_bypass;
  std::vector<std::string> tls_proxies;
  std::string tls_upstream_ca, tls_ca_cert, tls_ca_key;
  bool secrets_given = false;  // --secret turns interception on for its hosts
};

// --tls-ports: a comma-separated list of ports, 1 to 65535, none twice.
Result<std::vector<std::uint16_t>> parse_tls_ports(std::string_view text);

// Adds the flags to `cmd`. `policy_only`: just --net, --allow and --deny.
// The rules are collected as each flag is parsed, so their order is the
// command line's whatever mix of --allow and --deny it has.
void add_network_flags(CLI::App* cmd, NetworkFlags& f, bool policy_only);

// The options the flags give, checked (validate_network): EINVAL with the
// reason for a bad one.
Result<NetworkOptions> network_options_from(const NetworkFlags& f);
// `moat network update`: the mode if --net was given, the rules as typed
// (none: the sandbox's rules are all removed), checked.
Result<NetworkPolicyUpdate> network_update_from(const NetworkFlags& f);

// NAME:IP, split at the first ':' (the IP may be IPv6).
Result<HostEntry> parse_add_host(std::string_view text);

}  // namespace moat::cli
