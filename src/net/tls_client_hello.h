// The server name (SNI) a guest's TLS ClientHello asks for, read from the
// first bytes it sends on a connection, so that a connection a domain rule
// allowed must also name an allowed server when it says which (policy.h).
//
// The bytes are hostile: every length is checked against the data given
// and nothing past it is read. Only a ClientHello whose first record is
// whole in `data` is read; otherwise the name is not visible (kNotVisible),
// which leaves the decision to the address the resolver tied to the name.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace moat::net {

struct ServerName {
  enum class Kind {
    kNotTls,      // not a TLS handshake record
    kNotVisible,  // a handshake, but no whole ClientHello in the first record
    kNone,        // a ClientHello without a server name
    kName,        // `name`: the host name asked for, lower case, no trailing dot
  };
  Kind kind = Kind::kNotTls;
  std::string name;
};

ServerName read_server_name(std::span<const std::uint8_t> data);

}  // namespace moat::net
