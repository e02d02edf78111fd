// The TLS server name reader on any bytes: nothing may crash or read past
// the input, and a name it returns is a valid, normalised host name.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "net/policy.h"
#include "net/tls_client_hello.h"

using namespace moat::net;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ServerName n = read_server_name(std::span<const std::uint8_t>(data, size));
  if (n.kind == ServerName::Kind::kName && (!valid_domain_name(n.name) || normalize_name(n.name) != n.name))
    std::abort();
  if (n.kind != ServerName::Kind::kName && !n.name.empty()) std::abort();
  return 0;
}
