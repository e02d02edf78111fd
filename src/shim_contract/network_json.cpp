#include "shim_contract/network_json.h"

#include <cerrno>
#include <cstdint>
#include <limits>
#include <string>

namespace moat::shim {
namespace {

using Json = nlohmann::json;

Error bad_field(const std::string& field, const char* what) {
  return make_error("network field \"" + field + "\" " + what, EINVAL);
}

// Each reader leaves `out` as it is when the field is missing.
Status read_string(const Json& j, const char* key, const std::string& field, std::string& out) {
  auto it = j.find(key);
  if (it == j.end()) return ok_status();
  if (!it->is_string()) return bad_field(field, "is not a string");
  out = it->get<std::string>();
  return ok_status();
}

Status read_bool(const Json& j, const char* key, const std::string& field, bool& out) {
  auto it = j.find(key);
  if (it == j.end()) return ok_status();
  if (!it->is_boolean()) return bad_field(field, "is not a boolean");
  out = it->get<bool>();
  return ok_status();
}

template <class T>
Status read_uint(const Json& j, const char* key, const std::string& field, T& out) {
  auto it = j.find(key);
  if (it == j.end()) return ok_status();
  // JSON built in memory holds non-negative numbers as signed ones.
  bool negative = it->is_number_integer() && !it->is_number_unsigned() && it->get<std::int64_t>() < 0;
  if (!it->is_number_integer() || negative) return bad_field(field, "is not an unsigned integer");
  auto v = it->get<std::uint64_t>();
  if (v > std::numeric_limits<T>::max()) return bad_field(field, "is out of range");
  out = static_cast<T>(v);
  return ok_status();
}

// The list under `key` (missing: empty), each element an object.
Result<const Json*> read_list(const Json& j, const char* key) {
  static const Json kEmpty = Json::array();
  auto it = j.find(key);
  if (it == j.end()) return &kEmpty;
  if (!it->is_array()) return bad_field(key, "is not a list");
  for (std::size_t i = 0; i < it->size(); ++i)
    if (!(*it)[i].is_object()) return bad_field(std::string(key) + "[" + std::to_string(i) + "]", "is not an object");
  return &*it;
}

std::string item(const char* list, std::size_t i, const char* key) {
  return std::string(list) + "[" + std::to_string(i) + "]." + key;
}

Status read_mode(const Json& j, NetworkMode& out) {
  auto it = j.find("mode");
  if (it == j.end()) return ok_status();
  if (!it->is_string()) return bad_field("mode", "is not a string");
  auto mode = parse_network_mode(it->get<std::string>());
  if (!mode.ok()) return bad_field("mode", "is not none, public or all");
  out = *mode;
  return ok_status();
}

Json rules_to_json(const std::vector<NetworkRule>& rules) {
  Json out = Json::array();
  for (const auto& r : rules) out.push_back({{"allow", r.allow}, {"rule", r.rule}});
  return out;
}

Status read_rules(const Json& j, std::vector<NetworkRule>& out) {
  MOAT_ASSIGN_OR_RETURN(const Json* list, read_list(j, "rules"));
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Json& r = (*list)[i];
    NetworkRule rule;
    if (!r.contains("rule")) return bad_field(item("rules", i, "rule"), "is missing");
    MOAT_TRY(read_bool(r, "allow", item("rules", i, "allow"), rule.allow));
    MOAT_TRY(read_string(r, "rule", item("rules", i, "rule"), rule.rule));
    out.push_back(std::move(rule));
  }
  return ok_status();
}

Status read_hosts(const Json& j, std::vector<HostEntry>& out) {
  MOAT_ASSIGN_OR_RETURN(const Json* list, read_list(j, "hosts"));
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Json& h = (*list)[i];
    HostEntry host;
    MOAT_TRY(read_string(h, "name", item("hosts", i, "name"), host.name));
    MOAT_TRY(read_string(h, "address", item("hosts", i, "address"), host.address));
    out.push_back(std::move(host));
  }
  return ok_status();
}

Status read_ports(const Json& j, std::vector<PublishedPort>& out) {
  MOAT_ASSIGN_OR_RETURN(const Json* list, read_list(j, "ports"));
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Json& p = (*list)[i];
    PublishedPort port;
    MOAT_TRY(read_string(p, "host_ip", item("ports", i, "host_ip"), port.host_ip));
    MOAT_TRY(read_uint(p, "host_port", item("ports", i, "host_port"), port.host_port));
    MOAT_TRY(read_uint(p, "guest_port", item("ports", i, "guest_port"), port.guest_port));
    MOAT_TRY(read_bool(p, "udp", item("ports", i, "udp"), port.udp));
    out.push_back(std::move(port));
  }
  return ok_status();
}

Json tls_to_json(const TlsInterception& t) {
  return {{"enabled", t.enabled},
          {"ports", t.ports},
          {"bypass", t.bypass},
          {"proxies", t.proxies},
          {"upstream_ca_file", t.upstream_ca_file},
          {"ca_certificate_file", t.ca_certificate_file},
          {"ca_key_file", t.ca_key_file}};
}

// A list of scalars under `key` (missing: `out` as it is), each read by `one`.
template <class T, class ReadOne>
Status read_scalars(const Json& j, const char* key, const std::string& field, std::vector<T>& out, ReadOne one) {
  auto it = j.find(key);
  if (it == j.end()) return ok_status();
  if (!it->is_array()) return bad_field(field, "is not a list");
  std::vector<T> values;
  for (std::size_t i = 0; i < it->size(); ++i) {
    T v{};
    Json holder = {{"v", (*it)[i]}};
    MOAT_TRY(one(holder, field + "[" + std::to_string(i) + "]", v));
    values.push_back(std::move(v));
  }
  out = std::move(values);
  return ok_status();
}

Status read_tls(const Json& j, TlsInterception& out) {
  auto it = j.find("tls");
  if (it == j.end()) return ok_status();
  if (!it->is_object()) return bad_field("tls", "is not an object");
  const Json& t = *it;
  MOAT_TRY(read_bool(t, "enabled", "tls.enabled", out.enabled));
  MOAT_TRY(read_scalars<std::uint16_t>(t, "ports", "tls.ports", out.ports,
                                       [](const Json& h, const std::string& f, std::uint16_t& v) {
                                         return read_uint(h, "v", f, v);
                                       }));
  MOAT_TRY(read_scalars<std::string>(t, "bypass", "tls.bypass", out.bypass,
                                     [](const Json& h, const std::string& f, std::string& v) {
                                       return read_string(h, "v", f, v);
                                     }));
  MOAT_TRY(read_scalars<std::string>(t, "proxies", "tls.proxies", out.proxies,
                                     [](const Json& h, const std::string& f, std::string& v) {
                                       return read_string(h, "v", f, v);
                                     }));
  MOAT_TRY(read_string(t, "upstream_ca_file", "tls.upstream_ca_file", out.upstream_ca_file));
  MOAT_TRY(read_string(t, "ca_certificate_file", "tls.ca_certificate_file", out.ca_certificate_file));
  MOAT_TRY(read_string(t, "ca_key_file", "tls.ca_key_file", out.ca_key_file));
  return ok_status();
}

}  // namespace

Json network_to_json(const NetworkOptions& o) {
  Json hosts = Json::array();
  for (const auto& h : o.hosts) hosts.push_back({{"name", h.name}, {"address", h.address}});
  Json ports = Json::array();
  for (const auto& p : o.ports)
    ports.push_back(
        {{"host_ip", p.host_ip}, {"host_port", p.host_port}, {"guest_port", p.guest_port}, {"udp", p.udp}});
  return {{"mode", to_string(o.mode)},
          {"rules", rules_to_json(o.rules)},
          {"hosts", std::move(hosts)},
          {"dns", o.dns},
          {"ports", std::move(ports)},
          {"publish_listening", o.publish_listening},
          {"max_connections", o.max_connections},
          {"egress_bytes_per_second", o.egress_bytes_per_second},
          {"tls", tls_to_json(o.tls)}};
}

Result<NetworkOptions> network_from_json(const Json& j) {
  if (!j.is_object()) return make_error("the network options are not an object", EINVAL);
  NetworkOptions o;
  MOAT_TRY(read_mode(j, o.mode));
  MOAT_TRY(read_rules(j, o.rules));
  MOAT_TRY(read_hosts(j, o.hosts));
  MOAT_TRY(read_string(j, "dns", "dns", o.dns));
  MOAT_TRY(read_ports(j, o.ports));
  MOAT_TRY(read_string(j, "publish_listening", "publish_listening", o.publish_listening));
  MOAT_TRY(read_uint(j, "max_connections", "max_connections", o.max_connections));
  MOAT_TRY(read_uint(j, "egress_bytes_per_second", "egress_bytes_per_second", o.egress_bytes_per_second));
  MOAT_TRY(read_tls(j, o.tls));
  return o;
}

Json network_policy_to_json(const NetworkPolicy& p) {
  return {{"mode", to_string(p.mode)}, {"rules", rules_to_json(p.rules)}};
}

Result<NetworkPolicy> network_policy_from_json(const Json& j) {
  if (!j.is_object()) return make_error("the network policy is not an object", EINVAL);
  for (const char* key : {"mode", "rules"})
    if (!j.contains(key)) return bad_field(key, "is missing");
  NetworkPolicy p;
  MOAT_TRY(read_mode(j, p.mode));
  MOAT_TRY(read_rules(j, p.rules));
  return p;
}

}  // namespace moat::shim
