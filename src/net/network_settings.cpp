#include "net/network_settings.h"

#include <cerrno>
#include <charconv>
#include <set>
#include <tuple>

#include "proto/guest_network.h"

namespace moat::net {
namespace {

Error bad(const std::string& what, std::string_view text, const std::string& why) {
  return make_error("bad " + what + " \"" + std::string(text) + "\": " + why, EINVAL);
}

std::optional<std::uint16_t> read_port(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || value == 0 || value > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

// An address with or without brackets around IPv6.
std::optional<IpAddress> read_address(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    auto a = IpAddress::parse(text.substr(1, text.size() - 2));
    if (a && !a->is_v4()) return a;
    return std::nullopt;
  }
  return IpAddress::parse(text);
}

// -p as written: [HOST_IP:]HOST_PORT:GUEST_PORT[/udp].
std::string port_text(const PublishedPort& p) {
  bool v6 = p.host_ip.find(':') != std::string::npos && p.host_ip.front() != '[';
  return (v6 ? "[" + p.host_ip + "]" : p.host_ip) + ":" + std::to_string(p.host_port) + ":" +
         std::to_string(p.guest_port) + (p.udp ? "/udp" : "");
}

}  // namespace

std::vector<IpAddress> host_gateway_addresses() {
  return {*IpAddress::parse(proto::kGatewayIpv4), *IpAddress::parse(proto::kGatewayIpv6)};
}

Result<std::shared_ptr<const Policy>> read_policy(NetworkMode mode, const std::vector<NetworkRule>& rules) {
  std::vector<Rule> parsed;
  parsed.reserve(rules.size());
  for (const auto& r : rules) {
    MOAT_ASSIGN_OR_RETURN(auto rule, parse_rule(r.rule, r.allow));
    parsed.push_back(std::move(rule));
  }
  NetMode m = mode == NetworkMode::kNone ? NetMode::kNone : mode == NetworkMode::kAll ? NetMode::kAll : NetMode::kPublic;
  return std::make_shared<const Policy>(m, std::move(parsed), host_gateway_addresses());
}

Result<Endpoint> read_dns_server(std::string_view text) {
  if (auto a = read_address(text)) return Endpoint{*a, 53};
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    std::size_t close = text.find("]:");
    if (close == std::string_view::npos) return bad("--dns", text, "expected IP, IP:PORT or [IPv6]:PORT");
    host = text.substr(0, close + 1);
    port = text.substr(close + 2);
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      return bad("--dns", text, "expected IP, IP:PORT or [IPv6]:PORT (IPv6 with a port goes in brackets)");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto a = read_address(host);
  if (!a) return bad("--dns", text, "\"" + std::string(host) + "\" is not an IP address");
  auto p = read_port(port);
  if (!p) return bad("--dns", text, "port \"" + std::string(port) + "\" is not a number from 1 to 65535");
  return Endpoint{*a, *p};
}

Result<std::vector<IpAddress>> read_host_address(std::string_view name, std::string_view text) {
  std::string entry = std::string(name) + ":" + std::string(text);
  if (name.empty()) return bad("--add-host", entry, "the name is empty (expected NAME:IP)");
  auto as_rule = parse_rule(name, true);
  if (!as_rule || as_rule->kind != Rule::TargetKind::kDomain || as_rule->domain != normalize_name(name))
    return bad("--add-host", entry, "\"" + std::string(name) + "\" is not a host name");
  if (text == "host-gateway") return host_gateway_addresses();
  auto a = read_address(text);
  if (!a) return bad("--add-host", entry, "\"" + std::string(text) + "\" is not an IP address or host-gateway");
  return std::vector<IpAddress>{*a};
}

Result<NetworkSettings> read_network_settings(const NetworkOptions& options) {
  NetworkSettings s;
  MOAT_ASSIGN_OR_RETURN(s.policy, read_policy(options.mode, options.rules));
  for (const auto& h : options.hosts) {
    MOAT_ASSIGN_OR_RETURN(auto addresses, read_host_address(h.name, h.address));
    s.hosts.emplace_back(normalize_name(h.name), std::move(addresses));
  }
  if (!options.dns.empty()) {
    MOAT_ASSIGN_OR_RETURN(auto dns, read_dns_server(options.dns));
    s.dns = dns;
  }
  std::set<std::tuple<std::string, std::uint16_t, bool>> seen;
  for (const auto& p : options.ports) {
    std::string text = port_text(p);
    auto ip = read_address(p.host_ip);
    if (!ip) return bad("-p", text, "\"" + p.host_ip + "\" is not an IP address");
    if (p.host_port == 0) return bad("-p", text, "the host port must be from 1 to 65535");
    if (p.guest_port == 0) return bad("-p", text, "the guest port must be from 1 to 65535");
    if (!seen.insert({ip->to_string(), p.host_port, p.udp}).second)
      return bad("-p", text, "the host port is published twice");
    s.forwards.push_back(PortForward{*ip, p.host_port, p.guest_port, p.udp});
  }
  if (options.max_connections < 1 || options.max_connections > kMaxMaxConnections)
    return make_error("bad --max-connections " + std::to_string(options.max_connections) + ": expected 1 to " +
                          std::to_string(kMaxMaxConnections),
                      EINVAL);
  s.max_connections = options.max_connections;
  s.egress_bytes_per_second = options.egress_bytes_per_second;
  return s;
}

}  // namespace moat::net

namespace moat {

bool network_needs_device(const NetworkOptions& options) {
  if (options.mode != NetworkMode::kNone || !options.ports.empty()) return true;
  for (const auto& r : options.rules)
    if (r.allow) return true;
  return false;
}

Status validate_network(const NetworkOptions& options) {
  MOAT_TRY(net::read_network_settings(options));
  return ok_status();
}

}  // namespace moat
