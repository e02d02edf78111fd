#include "cli/network_flags.h"

#include "moat/sandbox.h"

#include <cerrno>
#include <charconv>
#include <optional>


namespace moat::cli {
namespace {

Result<std::uint32_t> parse_max_connections(const std::string& text) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 1 || v > kMaxMaxConnections)
    return make_error("bad --max-connections \"" + text + "\": expected a number from 1 to " +
                          std::to_string(kMaxMaxConnections),
                      EINVAL);
  return static_cast<std::uint32_t>(v);
}

std::optional<std::uint16_t> net_port(std::string_view text) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 1 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

}  // namespace

void add_network_flags(CLI::App* cmd, NetworkFlags& f, bool policy_only) {
  cmd->add_option("--net", f.net,
                  policy_only ? "Where the guest may go when no rule matches: none, public or all (default: as it is)"
                              : "Where the guest may go when no rule matches: none, public (default) or all");
  // Each occurrence is taken as it is parsed (not after the whole command
  // line, when CLI11 runs callbacks option by option), so the rules keep the
  // order in which --allow and --deny were typed.
  cmd->add_option_function<std::string>(
         "--allow", [&f](const std::string& rule) { f.rules.push_back({.allow = true, .rule = rule}); },
         "Allow RULE = TARGET[:PORT|:LO-HI][/tcp|/udp] (repeatable; the first matching rule wins)")
      ->trigger_on_parse();
  cmd->add_option_function<std::string>(
         "--deny", [&f](const std::string& rule) { f.rules.push_back({.allow = false, .rule = rule}); },
         "Deny RULE (repeatable; in order with --allow)")
      ->trigger_on_parse();
  if (policy_only) return;
  cmd->add_option("--add-host", f.hosts, "Resolve NAME to IP in the guest: NAME:IP (IP may be host-gateway)")
      ->allow_extra_args(false);
  cmd->add_option("--dns", f.dns, "Upstream resolver IP[:PORT] ([IPv6]:PORT; default the host's)");
  cmd->add_option("-p,--publish", f.publish, "Publish a guest port on the host: [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]")
      ->allow_extra_args(false);
  cmd->add_option("--publish-listening", f.publish_listening,
                  "Publish every TCP port the guest listens on at the same port of HOST_IP, while it listens");
  cmd->add_option("--max-connections", f.max_connections,
                  "Guest connections and UDP flows open at once (default " + std::to_string(kDefaultMaxConnections) +
                      ")");
  cmd->add_option("--egress-rate", f.egress_rate, "Guest-to-world bytes per second over all flows (10m; default no limit)");
  cmd->add_flag("--tls-intercept", f.tls_intercept,
                "End the guest's TLS in the shim and verify servers there; the guest trusts the sandbox CA");
  cmd->add_option("--tls-ports", f.tls_ports, "Ports whose TLS is intercepted, comma-separated (default 443)");
  cmd->add_option("--tls-bypass", f.tls_bypass, "Leave TLS to NAME or *.suffix alone (pinned clients; repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--tls-proxy", f.tls_proxies,
                  "An HTTP proxy the guest uses (HOST:PORT): its CONNECT targets meet the policy and their TLS is "
                  "intercepted (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--tls-upstream-ca", f.tls_upstream_ca, "PEM roots trusted for servers besides the host's");
  cmd->add_option("--tls-ca-cert", f.tls_ca_cert, "The CA certificate to sign with (default: $MOAT_HOME/tls/ca.crt)");
  cmd->add_option("--tls-ca-key", f.tls_ca_key, "The CA's private key (with --tls-ca-cert)");
}

Result<std::vector<std::uint16_t>> parse_tls_ports(std::string_view text) {
  std::vector<std::uint16_t> ports;
  std::size_t at = 0;
  while (true) {
    std::size_t comma = text.find(',', at);
    std::string_view one = text.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at);
    auto port = net_port(one);
    if (!port)
      return make_error("bad --tls-ports \"" + std::string(text) + "\": \"" + std::string(one) + "\" is not a port (1 to 65535)",
                        EINVAL);
    for (auto p : ports)
      if (p == *port)
        return make_error("bad --tls-ports \"" + std::string(text) + "\": port " + std::to_string(p) + " is given twice",
                          EINVAL);
    ports.push_back(*port);
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  return ports;
}

Result<HostEntry> parse_add_host(std::string_view text) {
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos)
    return make_error("bad --add-host \"" + std::string(text) + "\": expected NAME:IP", EINVAL);
  return HostEntry{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
}

Result<NetworkOptions> network_options_from(const NetworkFlags& f) {
  NetworkOptions o;
  if (!f.net.empty()) {
    MOAT_ASSIGN_OR_RETURN(o.mode, parse_network_mode(f.net));
  }
  o.rules = f.rules;
  for (const auto& h : f.hosts) {
    MOAT_ASSIGN_OR_RETURN(auto host, parse_add_host(h));
    o.hosts.push_back(std::move(host));
  }
  o.dns = f.dns;
  for (const auto& p : f.publish) {
    MOAT_ASSIGN_OR_RETURN(auto port, parse_published_port(p));
    o.ports.push_back(std::move(port));
  }
  o.publish_listening = f.publish_listening;
  if (!f.max_connections.empty()) {
    MOAT_ASSIGN_OR_RETURN(o.max_connections, parse_max_connections(f.max_connections));
  }
  if (!f.egress_rate.empty()) {
    auto rate = parse_byte_size(f.egress_rate);
    if (!rate) return rate.error().wrap("--egress-rate");
    o.egress_bytes_per_second = *rate;
  }
  bool tls_detail = !f.tls_ports.empty() || !f.tls_bypass.empty() || !f.tls_proxies.empty() ||
                    !f.tls_upstream_ca.empty() || !f.tls_ca_cert.empty() || !f.tls_ca_key.empty();
  if (tls_detail && !f.tls_intercept && !f.secrets_given)
    return make_error(
        "--tls-ports, --tls-bypass, --tls-proxy, --tls-upstream-ca and --tls-ca-cert/--tls-ca-key need "
        "--tls-intercept or --secret",
        EINVAL);
  o.tls.enabled = f.tls_intercept;
  if (!f.tls_ports.empty()) {
    MOAT_ASSIGN_OR_RETURN(o.tls.ports, parse_tls_ports(f.tls_ports));
  }
  o.tls.bypass = f.tls_bypass;
  o.tls.proxies = f.tls_proxies;
  o.tls.upstream_ca_file = f.tls_upstream_ca;
  o.tls.ca_certificate_file = f.tls_ca_cert;
  o.tls.ca_key_file = f.tls_ca_key;
  MOAT_TRY(validate_network(o));
  return o;
}

Result<NetworkPolicyUpdate> network_update_from(const NetworkFlags& f) {
  NetworkPolicyUpdate u;
  NetworkOptions check;
  if (!f.net.empty()) {
    MOAT_ASSIGN_OR_RETURN(check.mode, parse_network_mode(f.net));
    u.mode = check.mode;
  }
  u.rules = f.rules;
  check.rules = f.rules;
  MOAT_TRY(validate_network(check));
  return u;
}

}  // namespace moat::cli
