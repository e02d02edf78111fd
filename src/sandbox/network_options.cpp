// A sandbox's network options (include/moat/network.h): their command-line
// forms and the checks create and `moat network update` make before
// anything is stored or sent to a shim. Rules are parsed by the policy
// engine itself (net/policy.h), so what passes here is what the shim applies.
#include "moat/network.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "net/ip_address.h"
#include "net/policy.h"
#include "shim_contract/network_json.h"

namespace moat {
namespace {

constexpr std::string_view kHostGateway = "host-gateway";
constexpr const char* kPublishForm = "expected [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]";

Error bad(std::string_view flag, std::string_view text, const std::string& why) {
  return make_error("bad " + std::string(flag) + " \"" + std::string(text) + "\": " + why, EINVAL);
}

// 1 to 65535 in decimal, nothing else.
std::optional<std::uint16_t> port_number(std::string_view text) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 1 || v > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

Result<std::uint16_t> port_of(std::string_view flag, std::string_view text, std::string_view port) {
  auto v = port_number(port);
  if (!v) return bad(flag, text, "port \"" + std::string(port) + "\" is not 1 to 65535");
  return *v;
}

bool is_label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// What a domain rule can name (net/policy.h): after normalize_name, 1 to
// kMaxDomainBytes of labels of 1 to 63 letters, digits, '-' and '_', none
// starting or ending with '-'.
bool valid_domain(std::string_view name) {
  if (name.empty() || name.size() > net::kMaxDomainBytes) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t dot = std::min(name.find('.', start), name.size());
    std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), is_label_char)) return false;
    start = dot + 1;
  }
  return true;
}

// An address with or without brackets around an IPv6 one.
std::optional<net::IpAddress> unbracketed_address(std::string_view text) {
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') {
    auto a = net::IpAddress::parse(text.substr(1, text.size() - 2));
    if (!a || a->is_v4()) return std::nullopt;
    return a;
  }
  return net::IpAddress::parse(text);
}

Status check_host(const HostEntry& h) {
  std::string text = h.name + ":" + h.address;
  if (h.name.empty()) return bad("--add-host", text, "no name before the ':' (NAME:IP)");
  std::string name = net::normalize_name(h.name);
  if (net::IpAddress::parse(name))
    return bad("--add-host", text, "the name \"" + h.name + "\" is an address, not a name");
  if (!valid_domain(name))
    return bad("--add-host", text,
               "the name \"" + h.name +
                   "\" is not a domain name (labels of 1 to 63 letters, digits, '-' or '_', at most 253 bytes)");
  if (h.address.empty()) return bad("--add-host", text, "no address after the ':' (NAME:IP)");
  if (h.address != kHostGateway && !unbracketed_address(h.address))
    return bad("--add-host", text,
               "the address \"" + h.address + "\" is not an IPv4 or IPv6 address, nor host-gateway");
  return ok_status();
}

// IP, IP:PORT, [IPv6] or [IPv6]:PORT; a bare IPv6 address has no port.
Status check_dns(const std::string& dns) {
  if (dns.empty()) return ok_status();
  std::string_view rest = dns;
  std::string_view address, port;
  if (rest.front() == '[') {
    std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("--dns", dns, "\"[\" without \"]\"");
    address = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      return bad("--dns", dns, "unexpected \"" + std::string(rest) + "\" after the address");
    if (!rest.empty()) port = rest.substr(1);
    auto a = net::IpAddress::parse(address);
    if (!a || a->is_v4())
      return bad("--dns", dns, "\"" + std::string(address) + "\" is not an IPv6 address (only IPv6 goes in brackets)");
    if (!rest.empty()) MOAT_TRY(port_of("--dns", dns, port));
    return ok_status();
  }
  std::size_t colon = rest.find(':');
  bool v6 = colon != std::string_view::npos && rest.find(':', colon + 1) != std::string_view::npos;
  address = v6 ? rest : rest.substr(0, colon);
  auto a = net::IpAddress::parse(address);
  if (!a) return bad("--dns", dns, "\"" + std::string(address) + "\" is not an IPv4 or IPv6 address");
  if (!v6 && colon != std::string_view::npos) MOAT_TRY(port_of("--dns", dns, rest.substr(colon + 1)));
  return ok_status();
}

Status check_ports(const std::vector<PublishedPort>& ports) {
  std::vector<std::tuple<std::string, std::uint16_t, bool>> seen;
  for (const auto& p : ports) {
    std::string text = to_string(p);
    auto ip = net::IpAddress::parse(p.host_ip);
    if (!ip)
      return bad("-p", text, "the host IP \"" + p.host_ip + "\" is not an IPv4 or IPv6 address (no brackets here)");
    if (p.host_port == 0) return bad("-p", text, "the host port is 0 (1 to 65535)");
    if (p.guest_port == 0) return bad("-p", text, "the guest port is 0 (1 to 65535)");
    std::tuple<std::string, std::uint16_t, bool> key{ip->to_string(), p.host_port, p.udp};
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      return bad("-p", text,
                 "host port " + std::to_string(p.host_port) + (p.udp ? "/udp" : "/tcp") + " on " +
                     ip->to_string() + " is published twice");
    seen.push_back(std::move(key));
  }
  return ok_status();
}

}  // namespace

const char* to_string(NetworkMode mode) { return shim::network_mode_name(mode); }

Result<NetworkMode> parse_network_mode(std::string_view text) {
  if (auto mode = shim::network_mode_from_name(text)) return *mode;
  return bad("--net", text, "expected none, public or all");
}

Result<PublishedPort> parse_published_port(std::string_view text) {
  PublishedPort p;
  std::string_view rest = text;
  if (std::size_t slash = rest.rfind('/'); slash != std::string_view::npos) {
    std::string_view protocol = rest.substr(slash + 1);
    if (protocol == "udp") p.udp = true;
    else if (protocol != "tcp")
      return bad("-p", text, "unknown protocol \"" + std::string(protocol) + "\" (tcp or udp)");
    rest = rest.substr(0, slash);
  }
  std::string_view ports = rest;
  if (!rest.empty() && rest.front() == '[') {
    std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("-p", text, "\"[\" without \"]\"");
    std::string_view address = rest.substr(1, close - 1);
    auto ip = net::IpAddress::parse(address);
    if (!ip || ip->is_v4())
      return bad("-p", text, "\"" + std::string(address) + "\" is not an IPv6 address (only IPv6 goes in brackets)");
    if (close + 1 >= rest.size() || rest[close + 1] != ':') return bad("-p", text, kPublishForm);
    p.host_ip = ip->to_string();
    ports = rest.substr(close + 2);
  } else if (std::count(rest.begin(), rest.end(), ':') == 2) {
    std::size_t colon = rest.find(':');
    std::string_view address = rest.substr(0, colon);
    auto ip = net::IpAddress::parse(address);
    if (!ip) return bad("-p", text, "the host IP \"" + std::string(address) + "\" is not an IPv4 address");
    p.host_ip = ip->to_string();
    ports = rest.substr(colon + 1);
  } else if (std::count(rest.begin(), rest.end(), ':') > 2) {
    return bad("-p", text, "IPv6 host addresses go in brackets, as in [::1]:8080:80");
  }
  std::size_t colon = ports.find(':');
  if (colon == std::string_view::npos || ports.find(':', colon + 1) != std::string_view::npos)
    return bad("-p", text, kPublishForm);
  MOAT_ASSIGN_OR_RETURN(p.host_port, port_of("-p", text, ports.substr(0, colon)));
  MOAT_ASSIGN_OR_RETURN(p.guest_port, port_of("-p", text, ports.substr(colon + 1)));
  return p;
}

std::string to_string(const PublishedPort& port) {
  bool v6 = port.host_ip.find(':') != std::string::npos;
  std::string out = v6 ? "[" + port.host_ip + "]" : port.host_ip;
  out += ":" + std::to_string(port.host_port) + ":" + std::to_string(port.guest_port);
  if (port.udp) out += "/udp";
  return out;
}

Status validate_network(const NetworkOptions& o) {
  if (o.mode != NetworkMode::kNone && o.mode != NetworkMode::kPublic && o.mode != NetworkMode::kAll)
    return make_error("network mode " + std::to_string(static_cast<int>(o.mode)) + " is not none, public or all",
                      EINVAL);
  if (o.rules.size() > kMaxNetworkRules)
    return make_error("too many network rules: " + std::to_string(o.rules.size()) + " (at most " +
                          std::to_string(kMaxNetworkRules) + ")",
                      EINVAL);
  for (const auto& r : o.rules) MOAT_TRY(net::parse_rule(r.rule, r.allow));
  for (const auto& h : o.hosts) MOAT_TRY(check_host(h));
  MOAT_TRY(check_dns(o.dns));
  MOAT_TRY(check_ports(o.ports));
  if (o.max_connections < 1 || o.max_connections > kMaxMaxConnections)
    return bad("--max-connections", std::to_string(o.max_connections),
               "expected 1 to " + std::to_string(kMaxMaxConnections));
  return ok_status();
}

bool network_needs_device(const NetworkOptions& o) {
  if (o.mode != NetworkMode::kNone || !o.ports.empty()) return true;
  return std::any_of(o.rules.begin(), o.rules.end(), [](const NetworkRule& r) { return r.allow; });
}

}  // namespace moat
