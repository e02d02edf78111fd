// The heads of a tunnel through a declared proxy (src/tls/proxy_connect.h):
// the guest's CONNECT request and the proxy's answer are hostile bytes.
// The first input byte picks the reader; a request that parses must name a
// host that is a valid name or an address, and a port.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/ip_address.h"
#include "net/policy.h"
#include "tls/proxy_connect.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > 2 * moat::tls::kMaxProxyHead) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::size_t head = moat::tls::http_head_length(bytes);
  if (head > bytes.size()) std::abort();
  if (data[0] & 1) {
    auto status = moat::tls::parse_proxy_status(bytes.substr(0, head ? head : bytes.size()));
    if (status.ok() && (*status < 100 || *status > 999)) std::abort();
    return 0;
  }
  auto target = moat::tls::parse_connect_request(bytes.substr(0, head ? head : bytes.size()));
  if (!target.ok()) return 0;
  if (target->port == 0) std::abort();
  bool address = moat::net::IpAddress::parse(target->host).has_value();
  if (address != target->host_is_address) std::abort();
  if (!address && !moat::net::valid_domain_name(target->host)) std::abort();
  if (target->to_string().empty()) std::abort();
  return 0;
}
