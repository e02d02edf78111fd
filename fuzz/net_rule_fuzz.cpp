// Network policy rules and addresses from arbitrary bytes: a rule either
// fails to parse or prints in a normal form that parses back to itself, and
// deciding on any address, port and name never fails. Addresses that parse
// print back to the same address.
//
// Input: byte 0 picks allow/deny and the protocol, bytes 1-2 the port, then
// the rule text up to a newline, then an address and a name for the flow.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/policy.h"

using namespace moat::net;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  bool allow = data[0] & 1;
  Protocol protocol = (data[0] & 2) ? Protocol::kUdp : Protocol::kTcp;
  auto port = static_cast<std::uint16_t>(data[1] << 8 | data[2]);
  std::string_view rest(reinterpret_cast<const char*>(data) + 3, size - 3);
  std::size_t nl = rest.find('\n');
  std::string_view rule_text = rest.substr(0, nl);
  std::string_view flow_text = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
  std::size_t space = flow_text.find(' ');
  std::string_view address_text = flow_text.substr(0, space);
  std::string_view name = space == std::string_view::npos ? std::string_view{} : flow_text.substr(space + 1);

  auto rule = parse_rule(rule_text, allow);
  if (rule.ok()) {
    std::string printed = rule->to_string();
    auto again = parse_rule(printed, allow);
    if (!again.ok() || again->to_string() != printed) std::abort();
  }

  auto address = IpAddress::parse(address_text);
  if (address) {
    auto back = IpAddress::parse(address->to_string());
    if (!back || !(*back == *address)) std::abort();
    (void)address_groups(*address);
  }

  std::vector<Rule> rules;
  if (rule.ok()) rules.push_back(*rule);
  Policy policy(NetMode::kPublic, rules, {IpAddress::v4(10, 0, 2, 2)});
  Flow flow{address.value_or(IpAddress::v4(1, 1, 1, 1)), port, protocol, {normalize_name(name)}};
  (void)policy.decide(flow);
  (void)policy.decide_name(name);
  (void)policy.answer_allowed(name, flow.dst);
  return 0;
}
