// The server name of a TLS ClientHello (src/net/tls_client_hello.h): read
// from a whole first record, not visible otherwise, and never past the bytes.
#include "net/tls_client_hello.h"

#include <gtest/gtest.h>

#include <vector>

namespace moat::net {
namespace {

using Bytes = std::vector<std::uint8_t>;

void put16(Bytes& b, std::size_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}

// A ClientHello as a TLS 1.3 client sends it, with an optional server name
// and one other extension before it.
Bytes client_hello(const std::string& name) {
  Bytes ext;
  put16(ext, 0x000b);  // ec_point_formats, before the name
  put16(ext, 2);
  ext.push_back(1);
  ext.push_back(0);
  if (!name.empty()) {
    put16(ext, 0);  // server_name
    put16(ext, name.size() + 5);
    put16(ext, name.size() + 3);
    ext.push_back(0);  // host_name
    put16(ext, name.size());
    ext.insert(ext.end(), name.begin(), name.end());
  }
  Bytes body = {3, 3};
  body.insert(body.end(), 32, 0xab);  // random
  body.push_back(0);                  // session id
  put16(body, 2);
  body.push_back(0x13);
  body.push_back(0x01);
  body.push_back(1);  // compression methods
  body.push_back(0);
  put16(body, ext.size());
  body.insert(body.end(), ext.begin(), ext.end());
  Bytes hs = {1, 0};
  put16(hs, body.size());
  hs.insert(hs.end(), body.begin(), body.end());
  Bytes rec = {22, 3, 1};
  put16(rec, hs.size());
  rec.insert(rec.end(), hs.begin(), hs.end());
  return rec;
}

TEST(NetTlsClientHello, ReadsTheServerName) {
  auto n = read_server_name(client_hello("API.Example.COM."));
  EXPECT_EQ(n.kind, ServerName::Kind::kName);
  EXPECT_EQ(n.name, "api.example.com");
  EXPECT_EQ(read_server_name(client_hello("")).kind, ServerName::Kind::kNone);
}

TEST(NetTlsClientHello, OtherBytesAreNotTls) {
  std::string http = "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n";
  EXPECT_EQ(read_server_name(Bytes(http.begin(), http.end())).kind, ServerName::Kind::kNotTls);
  EXPECT_EQ(read_server_name(Bytes{}).kind, ServerName::Kind::kNotTls);
}

TEST(NetTlsClientHello, EveryPrefixIsNotVisibleOrNotTls) {
  Bytes whole = client_hello("api.example.com");
  for (std::size_t n = 0; n < whole.size(); ++n) {
    Bytes prefix(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = read_server_name(prefix);
    EXPECT_TRUE(r.kind == ServerName::Kind::kNotTls || r.kind == ServerName::Kind::kNotVisible) << n;
    EXPECT_EQ(r.name, "");
  }
}

TEST(NetTlsClientHello, BadNamesAndLengthsAreNotVisible) {
  EXPECT_EQ(read_server_name(client_hello("bad name")).kind, ServerName::Kind::kNotVisible);
  Bytes lying = client_hello("api.example.com");
  lying[lying.size() - 16] = 0xff;  // the name's length past the extension
  EXPECT_EQ(read_server_name(lying).kind, ServerName::Kind::kNotVisible);
}

}  // namespace
}  // namespace moat::net
