// The heads of a tunnel through a declared proxy (src/tls/proxy_connect.h):
// the guest's CONNECT read exactly, anything else refused with the reason;
// the proxy's status line.
#include "tls/proxy_connect.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

namespace moat::tls {
namespace {

std::string refused(const std::string& head) {
  auto t = parse_connect_request(head);
  EXPECT_FALSE(t.ok()) << head;
  if (t.ok()) return "";
  EXPECT_EQ(t.error().code, EINVAL);
  return t.error().message;
}

TEST(TlsProxyConnect, AHeadEndsAtItsBlankLine) {
  EXPECT_EQ(http_head_length("CONNECT a:1 HTTP/1.1\r\n"), 0u);
  EXPECT_EQ(http_head_length("CONNECT a:1 HTTP/1.1\r\n\r\n\x16\x03"), 24u);
  EXPECT_EQ(http_head_length(""), 0u);
}

TEST(TlsProxyConnect, TheTargetIsANameOrAnAddressAndAPort) {
  auto t = parse_connect_request("CONNECT API.Example.test.:443 HTTP/1.1\r\nHost: x\r\nUser-Agent: curl\r\n\r\n");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->host, "api.example.test");
  EXPECT_EQ(t->port, 443);
  EXPECT_FALSE(t->host_is_address);
  EXPECT_EQ(t->to_string(), "api.example.test:443");
  auto v4 = parse_connect_request("CONNECT 93.184.216.34:8443 HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "93.184.216.34");
  EXPECT_TRUE(v4->host_is_address);
  auto v6 = parse_connect_request("CONNECT [2001:DB8::1]:443 HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "2001:db8::1");
  EXPECT_EQ(v6->to_string(), "[2001:db8::1]:443");
}

TEST(TlsProxyConnect, AnythingElseIsRefusedWithTheReason) {
  EXPECT_EQ(refused("GET http://a.test/ HTTP/1.1\r\n\r\n"),
            "not a CONNECT request: the method is GET (only CONNECT passes a declared proxy)");
  EXPECT_EQ(refused("connect a.test:443 HTTP/1.1\r\n\r\n"),
            "not a CONNECT request: the method is connect (only CONNECT passes a declared proxy)");
  EXPECT_EQ(refused(std::string("G\x01T / HTTP/1.1\r\n\r\n", 18)),
            "not a CONNECT request: the method is G?T (only CONNECT passes a declared proxy)");
  EXPECT_EQ(refused("CONNECT a.test:443 HTTP/1.1\r\n"), "not a CONNECT request: the head does not end with a blank line");
  EXPECT_EQ(refused("CONNECT a.test:443  HTTP/1.1\r\n\r\n"),
            "not a CONNECT request: the request line is not METHOD TARGET VERSION");
  EXPECT_EQ(refused("CONNECT a.test:443 HTTP/2\r\n\r\n"), "not a CONNECT request: the version is not HTTP/1.0 or HTTP/1.1");
  EXPECT_EQ(refused("CONNECT a.test HTTP/1.1\r\n\r\n"), "not a CONNECT request: the target is not host:port");
  EXPECT_EQ(refused("CONNECT :443 HTTP/1.1\r\n\r\n"), "not a CONNECT request: the target is not host:port");
  EXPECT_EQ(refused("CONNECT a.test:0 HTTP/1.1\r\n\r\n"), "not a CONNECT request: the target's port is not 1 to 65535");
  EXPECT_EQ(refused("CONNECT a.test:+443 HTTP/1.1\r\n\r\n"),
            "not a CONNECT request: the target's port is not 1 to 65535");
  EXPECT_EQ(refused("CONNECT ::1:443 HTTP/1.1\r\n\r\n"),
            "not a CONNECT request: the target's host is not a domain name or an address");
  EXPECT_EQ(refused("CONNECT [::1:443 HTTP/1.1\r\n\r\n"), "not a CONNECT request: the target's [address] is not closed");
  EXPECT_EQ(refused("CONNECT [1.2.3.4]:443 HTTP/1.1\r\n\r\n"),
            "not a CONNECT request: the target's [address] is not an IPv6 address");
  EXPECT_EQ(refused("CONNECT a_b..test:443 HTTP/1.1\r\n\r\n"),
            "not a CONNECT request: the target's host is not a domain name or an address");
  EXPECT_EQ(refused("CONNECT a.test:443 HTTP/1.1\r\nno colon\r\n\r\n"),
            "not a CONNECT request: a header line is malformed");
  EXPECT_EQ(refused("CONNECT a.test:443 HTTP/1.1\r\nX: a\rb\r\n\r\n"),
            "not a CONNECT request: a header line is malformed");
  EXPECT_EQ(refused("CONNECT a.test:443 HTTP/1.1\r\n: empty name\r\n\r\n"),
            "not a CONNECT request: a header line is malformed");
}

TEST(TlsProxyConnect, TheProxysStatusLine) {
  EXPECT_EQ(*parse_proxy_status("HTTP/1.1 200 Connection established\r\n\r\n"), 200);
  EXPECT_EQ(*parse_proxy_status("HTTP/1.0 407 Proxy Authentication Required\r\n\r\n"), 407);
  EXPECT_EQ(*parse_proxy_status("HTTP/1.1 204\r\n\r\n"), 204);
  for (const char* bad : {"HTTP/1.1 20 OK\r\n\r\n", "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
                          "SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 099 x\r\n\r\n", ""}) {
    auto s = parse_proxy_status(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.error().code, EPROTO);
    EXPECT_EQ(s.error().message.rfind("the proxy's answer is not HTTP/1: ", 0), 0u) << s.error().message;
  }
}

TEST(TlsProxyConnect, MoatsRefusalIsAWholeResponse) {
  EXPECT_EQ(proxy_refusal(403, "the tunnel to a.test:443 is refused: --net none"),
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 54\r\nConnection: close\r\n\r\n"
            "moat: the tunnel to a.test:443 is refused: --net none\n");
}

}  // namespace
}  // namespace moat::tls
