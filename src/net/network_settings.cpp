#include "net/network_settings.h"

#include <algorithm>
#include <cerrno>
#include <tuple>

#include "proto/guest_network.h"

namespace moat::net {
namespace {

constexpr std::string_view kHostGateway = "host-gateway";

Error bad(std::string_view flag, std::string_view text, const std::string& why) {
  return make_error("bad " + std::string(flag) + " \"" + std::string(text) + "\": " + why, EINVAL);
}

}  // namespace

Result<std::uint16_t> read_port(std::string_view flag, std::string_view text, std::string_view port) {
  auto v = read_port_number(port);
  if (!v) return bad(flag, text, "port \"" + std::string(port) + "\" is not 1 to 65535");
  return *v;
}

std::optional<IpAddress> read_address(std::string_view text) {
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') {
    auto a = IpAddress::parse(text.substr(1, text.size() - 2));
    if (!a || a->is_v4()) return std::nullopt;
    return a;
  }
  return IpAddress::parse(text);
}

std::vector<IpAddress> host_gateway_addresses() {
  return {*IpAddress::parse(proto::kGatewayIpv4), *IpAddress::parse(proto::kGatewayIpv6)};
}

std::vector<IpAddress> host_gateway_names_addresses() { return {*IpAddress::parse(proto::kGatewayIpv4)}; }

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

// IP, IP:PORT, [IPv6] or [IPv6]:PORT; a bare IPv6 address has no port.
Result<Endpoint> read_dns_server(std::string_view dns) {
  std::string_view rest = dns;
  if (!rest.empty() && rest.front() == '[') {
    std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("--dns", dns, "\"[\" without \"]\"");
    std::string_view address = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      return bad("--dns", dns, "unexpected \"" + std::string(rest) + "\" after the address");
    auto a = IpAddress::parse(address);
    if (!a || a->is_v4())
      return bad("--dns", dns, "\"" + std::string(address) + "\" is not an IPv6 address (only IPv6 goes in brackets)");
    Endpoint e{*a, 53};
    if (!rest.empty()) {
      MOAT_ASSIGN_OR_RETURN(e.port, read_port("--dns", dns, rest.substr(1)));
    }
    return e;
  }
  std::size_t colon = rest.find(':');
  bool v6 = colon != std::string_view::npos && rest.find(':', colon + 1) != std::string_view::npos;
  std::string_view address = v6 ? rest : rest.substr(0, colon);
  auto a = IpAddress::parse(address);
  if (!a) return bad("--dns", dns, "\"" + std::string(address) + "\" is not an IPv4 or IPv6 address");
  Endpoint e{*a, 53};
  if (!v6 && colon != std::string_view::npos) {
    MOAT_ASSIGN_OR_RETURN(e.port, read_port("--dns", dns, rest.substr(colon + 1)));
  }
  return e;
}

Result<std::vector<IpAddress>> read_host_entry(const HostEntry& h) {
  std::string text = h.name + ":" + h.address;
  if (h.name.empty()) return bad("--add-host", text, "no name before the ':' (NAME:IP)");
  std::string name = normalize_name(h.name);
  if (IpAddress::parse(name)) return bad("--add-host", text, "the name \"" + h.name + "\" is an address, not a name");
  if (!valid_domain_name(name))
    return bad("--add-host", text,
               "the name \"" + h.name +
                   "\" is not a domain name (labels of 1 to 63 letters, digits, '-' or '_', at most 253 bytes)");
  if (h.address.empty()) return bad("--add-host", text, "no address after the ':' (NAME:IP)");
  if (h.address == kHostGateway) return host_gateway_names_addresses();
  auto a = read_address(h.address);
  if (!a)
    return bad("--add-host", text, "the address \"" + h.address + "\" is not an IPv4 or IPv6 address, nor host-gateway");
  return std::vector<IpAddress>{*a};
}

Result<std::vector<PortForward>> read_port_forwards(const std::vector<PublishedPort>& ports) {
  std::vector<PortForward> out;
  for (const auto& p : ports) {
    std::string text = to_string(p);
    auto ip = IpAddress::parse(p.host_ip);
    if (!ip)
      return bad("-p", text, "the host IP \"" + p.host_ip + "\" is not an IPv4 or IPv6 address (no brackets here)");
    if (p.host_port == 0) return bad("-p", text, "the host port is 0 (1 to 65535)");
    if (p.guest_port == 0) return bad("-p", text, "the guest port is 0 (1 to 65535)");
    bool twice = std::any_of(out.begin(), out.end(), [&](const PortForward& f) {
      return f.host_ip == *ip && f.host_port == p.host_port && f.udp == p.udp;
    });
    if (twice)
      return bad("-p", text,
                 "host port " + std::to_string(p.host_port) + (p.udp ? "/udp" : "/tcp") + " on " + ip->to_string() +
                     " is published twice");
    out.push_back(PortForward{*ip, p.host_port, p.guest_port, p.udp});
  }
  return out;
}

std::string ProxyAddress::to_string() const { return host_port(host, port); }

Result<ProxyAddress> read_proxy_address(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return bad("--tls-proxy", text, "expected HOST:PORT (proxy.example:3128, host.moat.internal:3128)");
  MOAT_ASSIGN_OR_RETURN(auto port, read_port("--tls-proxy", text, text.substr(colon + 1)));
  std::string_view host = text.substr(0, colon);
  ProxyAddress out{"", port, std::nullopt};
  bool bracketed = host.front() == '[';
  if (auto ip = read_address(host); ip && (ip->is_v4() || bracketed)) {
    out.host = ip->to_string();
    out.address = ip;
    return out;
  }
  out.host = normalize_name(host);
  if (bracketed || !valid_domain_name(out.host))
    return bad("--tls-proxy", text, "the host is not a name or an address ([IPv6] in brackets)");
  return out;
}

// --tls-*: ports 1 to 65535, bypass patterns that are names, proxies.
static Result<TlsInterception> read_tls(const TlsInterception& tls) {
  TlsInterception out = tls;
  if (tls.enabled && tls.ports.empty()) return bad("--tls-ports", "", "no port given");
  if (tls.ports.size() > kMaxTlsPorts)
    return bad("--tls-ports", std::to_string(tls.ports.size()) + " ports", "at most " + std::to_string(kMaxTlsPorts));
  for (auto port : tls.ports)
    if (port == 0) return bad("--tls-ports", "0", "ports are 1 to 65535");
  if (tls.bypass.size() > kMaxTlsBypass)
    return bad("--tls-bypass", std::to_string(tls.bypass.size()) + " patterns",
               "at most " + std::to_string(kMaxTlsBypass));
  out.bypass.clear();
  for (const auto& pattern : tls.bypass) {
    // An address literal is kept too: a ClientHello may name one.
    std::string literal = normalize_name(pattern);
    auto normal = IpAddress::parse(literal) ? std::optional<std::string>(literal) : normalize_host_pattern(pattern);
    if (!normal) return bad("--tls-bypass", pattern, "expected a name (api.example.com) or *.suffix (*.example.com)");
    out.bypass.push_back(*normal);
  }
  if (tls.proxies.size() > kMaxTlsProxies)
    return bad("--tls-proxy", std::to_string(tls.proxies.size()) + " proxies",
               "at most " + std::to_string(kMaxTlsProxies));
  out.proxies.clear();
  for (const auto& proxy : tls.proxies) {
    MOAT_ASSIGN_OR_RETURN(auto p, read_proxy_address(proxy));
    out.proxies.push_back(p.to_string());
  }
  if (tls.ca_certificate_file.empty() != tls.ca_key_file.empty())
    return bad(tls.ca_key_file.empty() ? "--tls-ca-cert" : "--tls-ca-key",
               tls.ca_key_file.empty() ? tls.ca_certificate_file : tls.ca_key_file,
               "--tls-ca-cert and --tls-ca-key go together");
  return out;
}

Result<NetworkSettings> read_network_settings(const NetworkOptions& options) {
  if (options.mode != NetworkMode::kNone && options.mode != NetworkMode::kPublic && options.mode != NetworkMode::kAll)
    return make_error("network mode " + std::to_string(static_cast<int>(options.mode)) + " is not none, public or all",
                      EINVAL);
  if (options.rules.size() > kMaxNetworkRules)
    return make_error("too many network rules: " + std::to_string(options.rules.size()) + " (at most " +
                          std::to_string(kMaxNetworkRules) + ")",
                      EINVAL);
  NetworkSettings s;
  MOAT_ASSIGN_OR_RETURN(s.policy, read_policy(options.mode, options.rules));
  for (const auto& h : options.hosts) {
    MOAT_ASSIGN_OR_RETURN(auto addresses, read_host_entry(h));
    s.hosts.emplace_back(normalize_name(h.name), std::move(addresses));
  }
  if (!options.dns.empty()) {
    MOAT_ASSIGN_OR_RETURN(auto dns, read_dns_server(options.dns));
    s.dns = dns;
  }
  MOAT_ASSIGN_OR_RETURN(s.forwards, read_port_forwards(options.ports));
  if (!options.publish_listening.empty()) {
    s.publish_listening = IpAddress::parse(options.publish_listening);
    if (!s.publish_listening)
      return bad("--publish-listening", options.publish_listening,
                 "expected the host address to publish at, IPv4 or IPv6 without brackets (0.0.0.0, ::, 127.0.0.1)");
  }
  if (options.max_connections < 1 || options.max_connections > kMaxMaxConnections)
    return bad("--max-connections", std::to_string(options.max_connections),
               "expected 1 to " + std::to_string(kMaxMaxConnections));
  s.max_connections = options.max_connections;
  s.egress_bytes_per_second = options.egress_bytes_per_second;
  MOAT_ASSIGN_OR_RETURN(s.tls, read_tls(options.tls));
  return s;
}

}  // namespace moat::net
