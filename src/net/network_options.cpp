// A sandbox's network options (include/moat/network.h): their command-line
// forms and the check create and `moat network update` make before anything
// is stored or sent to a shim. The check is the reading the shim does
// (net/network_settings.h), so what passes here is what the shim applies.
#include "moat/network.h"

#include <algorithm>
#include <cerrno>
#include <string>

#include "net/ip_address.h"
#include "net/network_settings.h"
#include "net/policy.h"

namespace moat {
namespace {

constexpr const char* kPublishForm = "expected [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]";

Error bad(std::string_view flag, std::string_view text, const std::string& why) {
  return make_error("bad " + std::string(flag) + " \"" + std::string(text) + "\": " + why, EINVAL);
}

}  // namespace

const char* to_string(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::kNone: return net::to_string(net::NetMode::kNone);
    case NetworkMode::kPublic: return net::to_string(net::NetMode::kPublic);
    case NetworkMode::kAll: return net::to_string(net::NetMode::kAll);
  }
  return "unknown";
}

Result<NetworkMode> parse_network_mode(std::string_view text) {
  auto mode = net::parse_net_mode(text);
  if (!mode) return bad("--net", text, "expected none, public or all");
  switch (*mode) {
    case net::NetMode::kNone: return NetworkMode::kNone;
    case net::NetMode::kAll: return NetworkMode::kAll;
    case net::NetMode::kPublic: break;
  }
  return NetworkMode::kPublic;
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
  MOAT_ASSIGN_OR_RETURN(p.host_port, net::read_port("-p", text, ports.substr(0, colon)));
  MOAT_ASSIGN_OR_RETURN(p.guest_port, net::read_port("-p", text, ports.substr(colon + 1)));
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
  MOAT_TRY(net::read_network_settings(o));
  return ok_status();
}

bool network_needs_device(const NetworkOptions& o) {
  if (o.mode != NetworkMode::kNone || !o.ports.empty() || !o.publish_listening.empty()) return true;
  return std::any_of(o.rules.begin(), o.rules.end(), [](const NetworkRule& r) { return r.allow; });
}

}  // namespace moat
