#include "net/policy.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>

namespace moat::net {
namespace {

struct GroupName {
  const char* name;
  std::uint32_t bits;  // 0: @public or @host, handled apart
};

constexpr GroupName kGroups[] = {
    {"public", 0},
    {"private", kGroupPrivate},
    {"loopback", kGroupLoopback},
    {"link-local", kGroupLinkLocal},
    {"metadata", kGroupMetadata},
    {"multicast", kGroupMulticast},
    {"host", 0},
};

Error rule_error(std::string_view rule, const std::string& why) {
  return make_error("bad rule \"" + std::string(rule) + "\": " + why, EINVAL);
}

bool is_label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

std::optional<std::uint16_t> read_port_number(std::string_view text) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 1 || v > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

bool valid_domain_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxDomainBytes) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), is_label_char)) return false;
    start = dot + 1;
  }
  return true;
}

namespace {

bool looks_like_ipv4(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

Result<std::uint16_t> parse_port(std::string_view rule, std::string_view text) {
  auto v = read_port_number(text);
  if (!v) return rule_error(rule, "port \"" + std::string(text) + "\" is not 1 to 65535");
  return *v;
}

Status parse_ports(std::string_view rule, std::string_view text, Rule& r) {
  std::size_t dash = text.find('-');
  MOAT_ASSIGN_OR_RETURN(r.port_lo, parse_port(rule, text.substr(0, dash)));
  r.port_hi = r.port_lo;
  if (dash != std::string_view::npos) {
    MOAT_ASSIGN_OR_RETURN(r.port_hi, parse_port(rule, text.substr(dash + 1)));
    if (r.port_hi < r.port_lo) return rule_error(rule, "port range " + std::string(text) + " is empty");
  }
  return ok_status();
}

// "/tcp" or "/udp" at the end; a CIDR's "/8" is not a protocol.
Status take_protocol(std::string_view rule, std::string_view& text, Rule& r) {
  std::size_t slash = text.rfind('/');
  if (slash == std::string_view::npos) return ok_status();
  std::string_view tail = text.substr(slash + 1);
  if (tail.empty() || std::isdigit(static_cast<unsigned char>(tail[0]))) return ok_status();
  if (tail.find(']') != std::string_view::npos) return ok_status();
  if (tail == "tcp") r.protocol = Protocol::kTcp;
  else if (tail == "udp") r.protocol = Protocol::kUdp;
  else return rule_error(rule, "unknown protocol \"" + std::string(tail) + "\" (tcp or udp)");
  text = text.substr(0, slash);
  return ok_status();
}

Status parse_prefix(std::string_view rule, std::string_view text, bool v6, Rule& r) {
  std::string why;
  auto p = IpPrefix::parse(text, &why);
  if (!p) return rule_error(rule, why);
  if (p->base.is_v4() == v6)
    return rule_error(rule, v6 ? "only IPv6 addresses go in brackets" : "IPv6 addresses go in brackets, as in [::1]:443");
  r.prefix = *p;
  r.kind = text.find('/') == std::string_view::npos ? Rule::TargetKind::kAddress : Rule::TargetKind::kPrefix;
  return ok_status();
}

// "[v6]", "[v6]/len", "[v6/len]", each optionally followed by ":ports".
Status parse_bracketed(std::string_view rule, std::string_view text, Rule& r) {
  std::size_t close = text.find(']');
  if (close == std::string_view::npos) return rule_error(rule, "\"[\" without \"]\"");
  std::string address(text.substr(1, close - 1));
  std::string_view rest = text.substr(close + 1);
  if (!rest.empty() && rest[0] == '/') {
    std::size_t colon = rest.find(':');
    address += std::string(rest.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon);
  }
  MOAT_TRY(parse_prefix(rule, address, /*v6=*/true, r));
  if (rest.empty()) return ok_status();
  if (rest[0] != ':') return rule_error(rule, "unexpected \"" + std::string(rest) + "\" after the address");
  return parse_ports(rule, rest.substr(1), r);
}

Status parse_target(std::string_view rule, std::string_view target, Rule& r) {
  if (target.empty()) return rule_error(rule, "no target");
  if (target[0] == '@') {
    std::string_view name = target.substr(1);
    for (const auto& g : kGroups) {
      if (name != g.name) continue;
      r.kind = Rule::TargetKind::kGroup;
      r.group = g.bits;
      r.host_group = name == "host";
      return ok_status();
    }
    return rule_error(rule, "unknown group \"" + std::string(target) +
                                "\" (@public @private @loopback @link-local @metadata @multicast @host)");
  }
  if (target.find('/') != std::string_view::npos || looks_like_ipv4(target))
    return parse_prefix(rule, target, /*v6=*/false, r);
  bool suffix = target.size() > 2 && target.substr(0, 2) == "*.";
  if (target.find('*') != std::string_view::npos && !suffix)
    return rule_error(rule, "the only wildcard is a leading \"*.\" (*.example.com)");
  std::string name = normalize_name(suffix ? target.substr(2) : target);
  if (!valid_domain_name(name) || (suffix && name.find('*') != std::string::npos))
    return rule_error(rule, "\"" + std::string(target) + "\" is not an address, a CIDR, a domain or a group");
  r.kind = suffix ? Rule::TargetKind::kSuffix : Rule::TargetKind::kDomain;
  r.domain = std::move(name);
  return ok_status();
}

const char* group_name(std::uint32_t groups) {
  if (groups & kGroupLoopback) return "loopback";
  if (groups & kGroupMetadata) return "metadata";
  if (groups & kGroupLinkLocal) return "link-local";
  if (groups & kGroupPrivate) return "private";
  if (groups & kGroupMulticast) return "multicast";
  return "reserved";
}

std::string action_of(const Rule& r) { return r.allow ? "--allow " : "--deny "; }

}  // namespace

Result<NetMode> parse_net_mode(std::string_view text) {
  if (text == "none") return NetMode::kNone;
  if (text == "public") return NetMode::kPublic;
  if (text == "all") return NetMode::kAll;
  return make_error("--net " + std::string(text) + ": expected none, public or all", EINVAL);
}

const char* to_string(NetMode mode) {
  switch (mode) {
    case NetMode::kNone: return "none";
    case NetMode::kPublic: return "public";
    case NetMode::kAll: return "all";
  }
  return "unknown";
}

std::string normalize_name(std::string_view name) {
  std::string out(name);
  if (!out.empty() && out.back() == '.') out.pop_back();
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool name_in_suffix(std::string_view name, std::string_view suffix) {
  if (name == suffix) return true;
  return name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix &&
         name[name.size() - suffix.size() - 1] == '.';
}

std::optional<std::string> normalize_host_pattern(std::string_view text) {
  bool suffix = text.rfind("*.", 0) == 0;
  std::string name = normalize_name(suffix ? text.substr(2) : text);
  if (!valid_domain_name(name)) return std::nullopt;
  return suffix ? "*." + name : name;
}

Result<Rule> parse_rule(std::string_view text, bool allow) {
  if (text.size() > kMaxRuleBytes)
    return make_error("bad rule: longer than " + std::to_string(kMaxRuleBytes) + " bytes", EINVAL);
  Rule r;
  r.allow = allow;
  std::string_view rest = text;
  MOAT_TRY(take_protocol(text, rest, r));
  if (!rest.empty() && rest[0] == '[') {
    MOAT_TRY(parse_bracketed(text, rest, r));
    return r;
  }
  std::size_t colon = rest.find(':');
  if (colon != std::string_view::npos && rest.find(':', colon + 1) != std::string_view::npos)
    return rule_error(text, "IPv6 addresses go in brackets, as in [::1]:443");
  MOAT_TRY(parse_target(text, rest.substr(0, colon), r));
  if (colon != std::string_view::npos) MOAT_TRY(parse_ports(text, rest.substr(colon + 1), r));
  return r;
}

std::string Rule::to_string() const {
  std::string out;
  switch (kind) {
    case TargetKind::kAddress:
      out = prefix.base.is_v4() ? prefix.base.to_string() : "[" + prefix.base.to_string() + "]";
      break;
    case TargetKind::kPrefix:
      out = prefix.base.is_v4() ? prefix.to_string() : "[" + prefix.base.to_string() + "]/" + std::to_string(prefix.length);
      break;
    case TargetKind::kDomain: out = domain; break;
    case TargetKind::kSuffix: out = "*." + domain; break;
    case TargetKind::kGroup:
      for (const auto& g : kGroups) {
        bool is_this = host_group ? std::string_view(g.name) == "host"
                                  : g.bits == group && std::string_view(g.name) != "host";
        if (is_this) out = std::string("@") + g.name;
      }
      break;
  }
  if (!all_ports()) {
    out += ":" + std::to_string(port_lo);
    if (port_hi != port_lo) out += "-" + std::to_string(port_hi);
  }
  if (protocol == Protocol::kTcp) out += "/tcp";
  if (protocol == Protocol::kUdp) out += "/udp";
  return out;
}

bool Policy::is_host(const IpAddress& a) const {
  return std::find(host_addresses_.begin(), host_addresses_.end(), a) != host_addresses_.end();
}

bool Policy::target_matches(const Rule& r, const IpAddress& dst, const std::vector<std::string>& names) const {
  switch (r.kind) {
    case Rule::TargetKind::kAddress:
    case Rule::TargetKind::kPrefix: {
      if (r.prefix.contains(dst)) return true;
      // An IPv4 rule never opens IPv6, but an IPv4 deny holds for the IPv6
      // forms that lead to the same address.
      auto v4 = dst.embedded_v4();
      return !r.allow && v4 && r.prefix.contains(*v4);
    }
    case Rule::TargetKind::kGroup:
      if (r.host_group) return is_host(dst);
      if (r.group == 0) return is_public(dst) && !is_host(dst);
      return (address_groups(dst) & r.group) != 0;
    case Rule::TargetKind::kDomain:
      return std::find(names.begin(), names.end(), r.domain) != names.end();
    case Rule::TargetKind::kSuffix:
      return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return name_in_suffix(n, r.domain); });
  }
  return false;
}

Verdict Policy::decide(const Flow& flow) const {
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    if (r.protocol != Protocol::kAny && r.protocol != flow.protocol) continue;
    if (flow.port < r.port_lo || flow.port > r.port_hi) continue;
    if (!target_matches(r, flow.dst, flow.names)) continue;
    return Verdict{r.allow, static_cast<int>(i), action_of(r) + r.to_string()};
  }
  switch (mode_) {
    case NetMode::kNone: return Verdict{false, -1, "--net none"};
    case NetMode::kAll: return Verdict{true, -1, "--net all"};
    case NetMode::kPublic: break;
  }
  if (is_host(flow.dst)) return Verdict{false, -1, "--net public: the host needs a rule (--allow @host:PORT)"};
  std::uint32_t groups = address_groups(flow.dst);
  if (groups == 0) return Verdict{true, -1, "--net public"};
  return Verdict{false, -1, std::string("--net public: a ") + group_name(groups) + " address"};
}

Verdict Policy::decide_name(std::string_view name) const {
  std::string n = normalize_name(name);
  std::vector<std::string> names{n};
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    if (r.kind != Rule::TargetKind::kDomain && r.kind != Rule::TargetKind::kSuffix) continue;
    if (!r.allow && (!r.all_ports() || r.protocol != Protocol::kAny)) continue;
    if (!target_matches(r, IpAddress{}, names)) continue;
    return Verdict{r.allow, static_cast<int>(i), action_of(r) + r.to_string()};
  }
  if (mode_ == NetMode::kNone) return Verdict{false, -1, "--net none"};
  return Verdict{true, -1, std::string("--net ") + to_string(mode_)};
}

Verdict Policy::decide_tunnel(std::string_view host, std::uint16_t port) const {
  if (auto address = IpAddress::parse(host)) return decide(Flow{*address, port, Protocol::kTcp, {}});
  std::string name = normalize_name(host);
  if (!valid_domain_name(name)) return Verdict{false, -1, "not an address or a domain name"};
  std::vector<std::string> names{name};
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    if (r.kind != Rule::TargetKind::kDomain && r.kind != Rule::TargetKind::kSuffix) continue;
    if (r.protocol == Protocol::kUdp || port < r.port_lo || port > r.port_hi) continue;
    if (!target_matches(r, IpAddress{}, names)) continue;
    return Verdict{r.allow, static_cast<int>(i), action_of(r) + r.to_string()};
  }
  if (mode_ == NetMode::kNone) return Verdict{false, -1, "--net none"};
  return Verdict{true, -1, std::string("--net ") + to_string(mode_)};
}

bool Policy::answer_allowed(std::string_view name, const IpAddress& address) const {
  if (is_public(address) && !is_host(address)) return true;
  // Address, prefix and group rules match `address`, domain rules `name`.
  std::vector<std::string> names{normalize_name(name)};
  return std::any_of(rules_.begin(), rules_.end(),
                     [&](const Rule& r) { return r.allow && target_matches(r, address, names); });
}

}  // namespace moat::net
