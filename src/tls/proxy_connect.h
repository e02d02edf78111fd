// HTTP CONNECT through a proxy the guest is told to use (--tls-proxy,
// docs/tls.md "Through a proxy"): the heads the interceptor reads before a
// tunnel's TLS starts. The guest's CONNECT request names where the tunnel
// goes, which the policy judges and the secrets are bound by; the proxy's
// answer says whether the tunnel is open.
//
// Both sides are hostile: a head is at most kMaxProxyHead bytes, and
// anything that is not exactly an HTTP/1 CONNECT request or status line is
// refused rather than guessed at.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat::tls {

inline constexpr std::size_t kMaxProxyHead = 16 * 1024;

// The length of the HTTP head at the start of `bytes`, through its blank
// line; 0 while it is not whole.
std::size_t http_head_length(std::string_view bytes);

struct ConnectTarget {
  std::string host;  // a domain name (lower case, no trailing dot) or an address (no brackets)
  std::uint16_t port = 0;
  bool host_is_address = false;

  // "host:port", "[::1]:443": for logs.
  std::string to_string() const;
};

// The target of a CONNECT request head (through its blank line). EINVAL
// saying what is wrong: another method, a target that is not host:port, a
// line that is not HTTP/1.
Result<ConnectTarget> parse_connect_request(std::string_view head);

// The status code of a proxy's answer head. EPROTO when it is not an HTTP/1
// status line.
Result<int> parse_proxy_status(std::string_view head);

// The answer the guest gets when moat refuses its CONNECT (`status` 403 or
// 400): a short text body with the reason, and the connection closes.
std::string proxy_refusal(int status, std::string_view reason);

}  // namespace moat::tls
