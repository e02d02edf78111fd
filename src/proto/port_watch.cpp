#include "proto/port_watch.h"

#include <cerrno>
#include <string>

namespace moat::proto {

Message make_watch_ports(std::uint32_t interval_ms) {
  return make_message(kControlStream, msg::kWatchPorts, Json{{"interval_ms", interval_ms}});
}

Result<std::uint32_t> parse_watch_ports(const Json& payload) {
  MOAT_ASSIGN_OR_RETURN(auto ms, get_uint(payload, "interval_ms", kMaxWatchIntervalMs));
  if (ms != 0 && ms < kMinWatchIntervalMs)
    return make_error("watch_ports: interval_ms " + std::to_string(ms) + " is below " +
                          std::to_string(kMinWatchIntervalMs),
                      EINVAL);
  return static_cast<std::uint32_t>(ms);
}

Message make_listening(const PortSet& ports) {
  Json list = Json::array();
  for (auto p : ports) {
    if (list.size() == kMaxListeningPorts) break;
    list.push_back(p);
  }
  return make_message(kControlStream, msg::kListening, Json{{"tcp", std::move(list)}});
}

Result<PortSet> parse_listening(const Json& payload) {
  auto bad = [](const std::string& why) { return make_error("listening: " + why, EINVAL); };
  if (!payload.is_object()) return bad("the payload is not a map");
  auto it = payload.find("tcp");
  if (it == payload.end() || !it->is_array()) return bad("\"tcp\" is missing or not a list");
  if (it->size() > kMaxListeningPorts)
    return bad(std::to_string(it->size()) + " ports (at most " + std::to_string(kMaxListeningPorts) + ")");
  PortSet ports;
  for (const auto& p : *it) {
    if (!p.is_number_integer()) return bad("a port is not an integer");
    bool in_range = p.is_number_unsigned() ? p.get<std::uint64_t>() - 1 < 65535u
                                           : p.get<std::int64_t>() >= 1 && p.get<std::int64_t>() <= 65535;
    if (!in_range) return bad("port " + p.dump() + " is not 1 to 65535");
    auto n = static_cast<std::uint16_t>(p.get<std::uint64_t>());
    if (!ports.insert(n).second) return bad("port " + std::to_string(n) + " is listed twice");
  }
  return ports;
}

}  // namespace moat::proto
