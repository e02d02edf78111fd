#include "tls/proxy_connect.h"

#include <cerrno>

#include "net/ip_address.h"
#include "net/packet.h"
#include "net/policy.h"

namespace moat::tls {
namespace {

constexpr std::string_view kCrlf = "\r\n";

// "HTTP/1.0" or "HTTP/1.1".
bool http1_version(std::string_view v) { return v == "HTTP/1.1" || v == "HTTP/1.0"; }

// Every header line has a name, a colon, and no control bytes but tabs:
// the head is passed to the proxy as it is, so nothing in it may be
// ambiguous about where a line ends.
bool header_lines_sound(std::string_view lines) {
  while (!lines.empty()) {
    std::size_t end = lines.find(kCrlf);
    if (end == std::string_view::npos) return false;
    std::string_view line = lines.substr(0, end);
    lines.remove_prefix(end + 2);
    if (line.empty()) return lines.empty();  // the blank line ends the head
    std::size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    for (unsigned char c : line)
      if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return false;
}

}  // namespace

std::size_t http_head_length(std::string_view bytes) {
  std::size_t end = bytes.find("\r\n\r\n");
  return end == std::string_view::npos ? 0 : end + 4;
}

std::string ConnectTarget::to_string() const { return net::host_port(host, port); }

Result<ConnectTarget> parse_connect_request(std::string_view head) {
  auto bad = [](const std::string& why) { return make_error("not a CONNECT request: " + why, EINVAL); };
  if (http_head_length(head) != head.size()) return bad("the head does not end with a blank line");
  std::size_t line_end = head.find(kCrlf);
  std::string_view line = head.substr(0, line_end);
  std::size_t s1 = line.find(' ');
  std::size_t s2 = s1 == std::string_view::npos ? s1 : line.find(' ', s1 + 1);
  if (s2 == std::string_view::npos || line.find(' ', s2 + 1) != std::string_view::npos)
    return bad("the request line is not METHOD TARGET VERSION");
  std::string_view method = line.substr(0, s1), authority = line.substr(s1 + 1, s2 - s1 - 1);
  if (method != "CONNECT") {
    std::string shown(method.substr(0, 16));
    for (char& c : shown)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    return bad("the method is " + shown + " (only CONNECT passes a declared proxy)");
  }
  if (!http1_version(line.substr(s2 + 1))) return bad("the version is not HTTP/1.0 or HTTP/1.1");
  if (!header_lines_sound(head.substr(line_end + 2))) return bad("a header line is malformed");

  // authority-form (RFC 9110 7.1): host ":" port, the host an IPv6
  // address in brackets, a name, or an IPv4 address.
  std::size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad("the target is not host:port");
  auto port = net::read_port_number(authority.substr(colon + 1));
  if (!port) return bad("the target's port is not 1 to 65535");
  std::string_view host = authority.substr(0, colon);
  ConnectTarget t;
  t.port = *port;
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad("the target's [address] is not closed");
    auto a = net::IpAddress::parse(host.substr(1, host.size() - 2));
    if (!a || a->is_v4()) return bad("the target's [address] is not an IPv6 address");
    t.host = a->to_string();
    t.host_is_address = true;
    return t;
  }
  if (auto a = net::IpAddress::parse(host); a && a->is_v4()) {
    t.host = a->to_string();
    t.host_is_address = true;
    return t;
  }
  t.host = net::normalize_name(host);
  if (!net::valid_domain_name(t.host)) return bad("the target's host is not a domain name or an address");
  return t;
}

Result<int> parse_proxy_status(std::string_view head) {
  auto bad = [](const std::string& why) { return make_error("the proxy's answer is not HTTP/1: " + why, EPROTO); };
  if (head.size() < 12 || !http1_version(head.substr(0, 8)) || head[8] != ' ') return bad("no status line");
  int status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return bad("the status is not three digits");
    status = status * 10 + (head[i] - '0');
  }
  if (head.size() > 12 && head[12] != ' ' && head[12] != '\r') return bad("the status is not three digits");
  if (status < 100) return bad("the status is below 100");
  return status;
}

std::string proxy_refusal(int status, std::string_view reason) {
  std::string body = "moat: ";
  body.append(reason);
  body += '\n';
  const char* text = status == 403 ? "Forbidden" : "Bad Request";
  return "HTTP/1.1 " + std::to_string(status) + " " + text +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

}  // namespace moat::tls
