// Reading the display form of NetworkOptions (object_json.cpp writes it)
// from callers of the C ABI: untrusted text, so every field's type and range
// is checked and an unknown field is an error rather than silently ignored
// (a misspelt "rule" must not leave a sandbox open).
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "moat/json.h"

namespace moat {
namespace {

using Json = nlohmann::json;

// Far above any real policy (kMaxNetworkRules rules of a few hundred bytes).
constexpr std::size_t kMaxNetworkJson = 1 << 20;

Error bad(const std::string& field, const std::string& why) {
  return make_error("network." + field + ": " + why, EINVAL);
}

Status only_fields(const Json& j, const std::string& where, const std::set<std::string>& known) {
  if (!j.is_object()) return bad(where.empty() ? "" : where, "expected an object");
  for (const auto& [key, value] : j.items()) {
    (void)value;
    if (!known.count(key)) return bad(where.empty() ? key : where + "." + key, "not a field of this form");
  }
  return ok_status();
}

Result<std::string> string_at(const Json& j, const char* key, const std::string& where) {
  const Json& v = j.at(key);
  if (!v.is_string()) return bad(where, "expected a string");
  return v.get<std::string>();
}

Result<std::uint64_t> unsigned_at(const Json& j, const char* key, const std::string& where, std::uint64_t max) {
  const Json& v = j.at(key);
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > max)
    return bad(where, "expected a whole number from 0 to " + std::to_string(max));
  return v.get<std::uint64_t>();
}

Result<bool> bool_at(const Json& j, const char* key, const std::string& where) {
  const Json& v = j.at(key);
  if (!v.is_boolean()) return bad(where, "expected true or false");
  return v.get<bool>();
}

Result<std::vector<std::string>> strings_at(const Json& j, const char* key, const std::string& where) {
  const Json& v = j.at(key);
  if (!v.is_array()) return bad(where, "expected an array of strings");
  std::vector<std::string> out;
  for (const auto& item : v) {
    if (!item.is_string()) return bad(where, "expected an array of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<std::vector<NetworkRule>> rules_of(const Json& j) {
  const Json& v = j.at("rules");
  if (!v.is_array()) return bad("rules", "expected an array of {\"allow\": bool, \"rule\": string}");
  std::vector<NetworkRule> rules;
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::string where = "rules[" + std::to_string(i) + "]";
    MOAT_TRY(only_fields(v[i], where, {"allow", "rule"}));
    if (!v[i].contains("rule")) return bad(where, "\"rule\" is required");
    NetworkRule r;
    if (v[i].contains("allow")) {
      MOAT_ASSIGN_OR_RETURN(r.allow, bool_at(v[i], "allow", where + ".allow"));
    }
    MOAT_ASSIGN_OR_RETURN(r.rule, string_at(v[i], "rule", where + ".rule"));
    rules.push_back(std::move(r));
  }
  return rules;
}

Result<std::vector<HostEntry>> hosts_of(const Json& j) {
  const Json& v = j.at("hosts");
  if (!v.is_array()) return bad("hosts", "expected an array of {\"name\", \"address\"}");
  std::vector<HostEntry> hosts;
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::string where = "hosts[" + std::to_string(i) + "]";
    MOAT_TRY(only_fields(v[i], where, {"name", "address"}));
    if (!v[i].contains("name") || !v[i].contains("address")) return bad(where, "\"name\" and \"address\" are required");
    HostEntry h;
    MOAT_ASSIGN_OR_RETURN(h.name, string_at(v[i], "name", where + ".name"));
    MOAT_ASSIGN_OR_RETURN(h.address, string_at(v[i], "address", where + ".address"));
    hosts.push_back(std::move(h));
  }
  return hosts;
}

Result<std::vector<PublishedPort>> ports_of(const Json& j) {
  const Json& v = j.at("ports");
  if (!v.is_array()) return bad("ports", "expected an array of {\"host_port\", \"guest_port\", ...}");
  std::vector<PublishedPort> ports;
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::string where = "ports[" + std::to_string(i) + "]";
    MOAT_TRY(only_fields(v[i], where, {"host_ip", "host_port", "guest_port", "protocol"}));
    if (!v[i].contains("host_port") || !v[i].contains("guest_port"))
      return bad(where, "\"host_port\" and \"guest_port\" are required");
    PublishedPort p;
    if (v[i].contains("host_ip")) {
      MOAT_ASSIGN_OR_RETURN(p.host_ip, string_at(v[i], "host_ip", where + ".host_ip"));
    }
    MOAT_ASSIGN_OR_RETURN(auto host_port, unsigned_at(v[i], "host_port", where + ".host_port", 65535));
    MOAT_ASSIGN_OR_RETURN(auto guest_port, unsigned_at(v[i], "guest_port", where + ".guest_port", 65535));
    p.host_port = static_cast<std::uint16_t>(host_port);
    p.guest_port = static_cast<std::uint16_t>(guest_port);
    if (v[i].contains("protocol")) {
      MOAT_ASSIGN_OR_RETURN(auto protocol, string_at(v[i], "protocol", where + ".protocol"));
      if (protocol != "tcp" && protocol != "udp") return bad(where + ".protocol", "expected \"tcp\" or \"udp\"");
      p.udp = protocol == "udp";
    }
    ports.push_back(std::move(p));
  }
  return ports;
}

Status read_tls(const Json& t, TlsInterception& tls) {
  MOAT_TRY(only_fields(t, "tls",
                       {"intercept", "ports", "bypass", "proxies", "upstream_ca_file", "ca_certificate_file",
                        "ca_key_file"}));
  if (t.contains("intercept")) {
    MOAT_ASSIGN_OR_RETURN(tls.enabled, bool_at(t, "intercept", "tls.intercept"));
  }
  if (t.contains("ports")) {
    const Json& v = t.at("ports");
    if (!v.is_array()) return bad("tls.ports", "expected an array of ports");
    tls.ports.clear();
    for (const auto& p : v) {
      if (!p.is_number_unsigned() || p.get<std::uint64_t>() < 1 || p.get<std::uint64_t>() > 65535)
        return bad("tls.ports", "expected ports from 1 to 65535");
      tls.ports.push_back(static_cast<std::uint16_t>(p.get<std::uint64_t>()));
    }
  }
  if (t.contains("bypass")) {
    MOAT_ASSIGN_OR_RETURN(tls.bypass, strings_at(t, "bypass", "tls.bypass"));
  }
  if (t.contains("proxies")) {
    MOAT_ASSIGN_OR_RETURN(tls.proxies, strings_at(t, "proxies", "tls.proxies"));
  }
  if (t.contains("upstream_ca_file")) {
    MOAT_ASSIGN_OR_RETURN(tls.upstream_ca_file, string_at(t, "upstream_ca_file", "tls.upstream_ca_file"));
  }
  if (t.contains("ca_certificate_file")) {
    MOAT_ASSIGN_OR_RETURN(tls.ca_certificate_file, string_at(t, "ca_certificate_file", "tls.ca_certificate_file"));
  }
  if (t.contains("ca_key_file")) {
    MOAT_ASSIGN_OR_RETURN(tls.ca_key_file, string_at(t, "ca_key_file", "tls.ca_key_file"));
  }
  return ok_status();
}

Result<Json> parse_object(std::string_view text) {
  if (text.size() > kMaxNetworkJson) return make_error("network: the JSON is over 1 MiB", EINVAL);
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) return make_error("network: not valid JSON", EINVAL);
  if (!j.is_object()) return make_error("network: expected a JSON object", EINVAL);
  return j;
}

}  // namespace

Result<NetworkOptions> network_options_from_json_text(std::string_view text) {
  MOAT_ASSIGN_OR_RETURN(Json j, parse_object(text));
  MOAT_TRY(only_fields(j, "",
                       {"mode", "rules", "hosts", "dns", "ports", "publish_listening", "max_connections",
                        "egress_bytes_per_second", "tls"}));
  NetworkOptions o;
  if (j.contains("mode")) {
    MOAT_ASSIGN_OR_RETURN(auto mode, string_at(j, "mode", "mode"));
    auto parsed = parse_network_mode(mode);
    if (!parsed) return parsed.error().wrap("network.mode");
    o.mode = *parsed;
  }
  if (j.contains("rules")) {
    MOAT_ASSIGN_OR_RETURN(o.rules, rules_of(j));
  }
  if (j.contains("hosts")) {
    MOAT_ASSIGN_OR_RETURN(o.hosts, hosts_of(j));
  }
  if (j.contains("dns")) {
    MOAT_ASSIGN_OR_RETURN(o.dns, string_at(j, "dns", "dns"));
  }
  if (j.contains("ports")) {
    MOAT_ASSIGN_OR_RETURN(o.ports, ports_of(j));
  }
  if (j.contains("publish_listening")) {
    MOAT_ASSIGN_OR_RETURN(o.publish_listening, string_at(j, "publish_listening", "publish_listening"));
  }
  if (j.contains("max_connections")) {
    MOAT_ASSIGN_OR_RETURN(auto n, unsigned_at(j, "max_connections", "max_connections", kMaxMaxConnections));
    if (n == 0) return bad("max_connections", "expected 1 to " + std::to_string(kMaxMaxConnections));
    o.max_connections = static_cast<std::uint32_t>(n);
  }
  if (j.contains("egress_bytes_per_second")) {
    MOAT_ASSIGN_OR_RETURN(o.egress_bytes_per_second,
                          unsigned_at(j, "egress_bytes_per_second", "egress_bytes_per_second",
                                      std::numeric_limits<std::uint64_t>::max()));
  }
  if (j.contains("tls")) MOAT_TRY(read_tls(j.at("tls"), o.tls));
  return o;
}

Result<NetworkPolicyUpdate> network_update_from_json_text(std::string_view text) {
  MOAT_ASSIGN_OR_RETURN(Json j, parse_object(text));
  MOAT_TRY(only_fields(j, "", {"mode", "rules"}));
  if (!j.contains("rules")) return bad("rules", "required (an empty array removes every rule)");
  NetworkPolicyUpdate u;
  if (j.contains("mode")) {
    MOAT_ASSIGN_OR_RETURN(auto mode, string_at(j, "mode", "mode"));
    auto parsed = parse_network_mode(mode);
    if (!parsed) return parsed.error().wrap("network.mode");
    u.mode = *parsed;
  }
  MOAT_ASSIGN_OR_RETURN(u.rules, rules_of(j));
  return u;
}

}  // namespace moat
