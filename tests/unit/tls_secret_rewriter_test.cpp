// Secret placeholders in HTTP/1 requests (src/tls/secret_rewriter.h): what
// reaches a bound host, what reaches others, and what is refused.
#include "tls/secret_rewriter.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cerrno>

namespace moat::tls {
namespace {

const std::string kKeyHolder = "moat-secret-0123456789abcdef0123456789abcdef";
const std::string kTokenHolder = "moat-secret-fedcba9876543210fedcba9876543210";

std::vector<SecretBinding> secrets() {
  return {{"API_KEY", kKeyHolder, "sk-live-REAL", {"api.example.test"}},
          {"TOKEN", kTokenHolder, "tok-REAL", {"*.corp.test"}}};
}

// Feeds `in` in pieces of `step` bytes; the bytes out, or the error.
Result<std::string> run(const std::vector<SecretBinding>& s, const std::string& host, const std::string& in,
                        std::size_t step = 1 << 20) {
  SecretRewriter r(s, host);
  std::string out;
  for (std::size_t at = 0; at < in.size(); at += step) {
    auto st = r.feed(std::string_view(in).substr(at, step), out);
    if (!st) return st.error();
  }
  return out;
}

std::string b64(const std::string& s) {
  std::string out((s.size() + 2) / 3 * 4 + 1, '\0');
  out.resize(static_cast<std::size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                                      reinterpret_cast<const unsigned char*>(s.data()),
                                                      static_cast<int>(s.size()))));
  return out;
}

TEST(TlsSecretRewriter, ABoundHostGetsTheValueInHeadersWhateverTheReads) {
  auto s = secrets();
  std::string req = "GET /v1/models?key=" + kKeyHolder + " HTTP/1.1\r\nHost: api.example.test\r\n"
                    "Authorization: Bearer " + kKeyHolder + "\r\nX-Other:  keep  me \r\n\r\n";
  std::string want = "GET /v1/models?key=" + kKeyHolder + " HTTP/1.1\r\nHost: api.example.test\r\n"
                     "Authorization: Bearer sk-live-REAL\r\nX-Other: keep  me\r\n\r\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{7}, std::size_t{1} << 20}) {
    auto out = run(s, "api.example.test", req + req, step);
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(*out, want + want) << "in pieces of " << step << " (the query is left alone without :query)";
  }
}

TEST(TlsSecretRewriter, BasicCredentialsAreDecodedAndEncodedAgain) {
  auto s = secrets();
  std::string req = "GET / HTTP/1.1\r\nAuthorization: Basic " + b64("user:" + kTokenHolder) + "\r\n\r\n";
  auto out = run(s, "git.corp.test", req);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out, "GET / HTTP/1.1\r\nAuthorization: Basic " + b64("user:tok-REAL") + "\r\n\r\n");
  auto apex = run(s, "corp.test", req);
  ASSERT_TRUE(apex.ok());
  EXPECT_EQ(*apex, *out) << "*.corp.test covers the apex";
}

TEST(TlsSecretRewriter, BodiesPassAsTheyAreAndKeepAliveFindsTheNextHead) {
  auto s = secrets();
  std::string body = "{\"k\": \"" + kKeyHolder + "\"}";
  std::string chunked = "5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n";
  std::string req = "POST /a HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body +
                    "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked +
                    "GET /c HTTP/1.1\r\nAuthorization: " + kKeyHolder + "\r\n\r\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{5}, std::size_t{1} << 20}) {
    auto out = run(s, "api.example.test", req, step);
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(*out, "POST /a HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body +
                        "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked +
                        "GET /c HTTP/1.1\r\nAuthorization: sk-live-REAL\r\n\r\n");
  }
}

// 10k requests on one keep-alive connection, read 4 KiB at a time: every
// head is rewritten, and what the rewriter keeps between reads stays the
// unfinished part of one head (its output is handed on after each read).
TEST(TlsSecretRewriter, TenThousandRequestsOnOneConnectionAreEachRewritten) {
  auto s = secrets();
  SecretRewriter r(s, "api.example.test");
  const std::string request = "GET /x HTTP/1.1\r\nAuthorization: Bearer " + kKeyHolder + "\r\n\r\n";
  const std::string expected = "GET /x HTTP/1.1\r\nAuthorization: Bearer sk-live-REAL\r\n\r\n";
  std::string stream;
  for (int i = 0; i < 10000; ++i) stream += request;
  std::string out, all;
  std::size_t most_held = 0;
  for (std::size_t at = 0; at < stream.size(); at += 4096) {
    ASSERT_TRUE(r.feed(std::string_view(stream).substr(at, 4096), out).ok());
    // Whole requests out, at most one unfinished head kept back.
    all += out;
    std::size_t fed = std::min(at + 4096, stream.size());
    most_held = std::max(most_held, fed - all.size() / expected.size() * request.size());
    out.clear();
  }
  EXPECT_EQ(r.substituted(), 10000u);
  EXPECT_EQ(all.size(), expected.size() * 10000);
  EXPECT_EQ(all.substr(all.size() - expected.size()), expected);
  EXPECT_LT(most_held, request.size());
}

TEST(TlsSecretRewriter, APlaceholderForAnotherHostIsAViolationWherever) {
  auto s = secrets();
  std::string in_header = "GET / HTTP/1.1\r\nAuthorization: Bearer " + kKeyHolder + "\r\n\r\n";
  std::string in_basic = "GET / HTTP/1.1\r\nAuthorization: Basic " + b64("u:" + kKeyHolder) + "\r\n\r\n";
  std::string in_body = "POST / HTTP/1.1\r\nContent-Length: 60\r\n\r\nxxxxxxxxxxxxxxxx" + kKeyHolder;
  std::string raw = "\x16\x03\x01 not http at all " + kKeyHolder;
  for (const auto& [host, req] : std::vector<std::pair<std::string, std::string>>{
           {"evil.test", in_header}, {"evil.test", in_body}, {"evil.test", raw}, {"api.example.test.evil", in_header},
           {"git.corp.test", in_header}, {"git.corp.test", in_basic}}) {
    for (std::size_t step : {std::size_t{1}, std::size_t{1} << 20}) {
      auto out = run(s, host, req, step);
      ASSERT_FALSE(out.ok()) << host << ": " << req;
      EXPECT_EQ(out.error().code, EACCES);
      EXPECT_EQ(out.error().message,
                "secret API_KEY is not bound to " + host + ", and its placeholder was in the request");
    }
  }
  // The SNI decides, not the Host header the guest writes.
  auto spoofed = run(s, "evil.test", "GET / HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: " + kKeyHolder +
                                         "\r\n\r\n");
  ASSERT_FALSE(spoofed.ok());
  EXPECT_EQ(spoofed.error().code, EACCES);
  // Without any placeholder, another host's traffic passes untouched, HTTP or not.
  auto clean = run(s, "evil.test", "\x16\x03\x01 anything at all");
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(*clean, "\x16\x03\x01 anything at all");
}

TEST(TlsSecretRewriter, AmbiguousOrOversizedRequestsAreRefused) {
  auto s = secrets();
  auto error_of = [&](const std::string& req) {
    auto out = run(s, "api.example.test", req);
    EXPECT_FALSE(out.ok()) << req;
    if (out.ok()) return std::string();
    EXPECT_EQ(out.error().code, EPROTO);
    return out.error().message;
  };
  const std::string why = "the request cannot be framed safely: ";
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            why + "both Content-Length and Transfer-Encoding");
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            why + "two different Content-Lengths");
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), why + "Content-Length \"-1\"");
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            why + "Transfer-Encoding \"chunked, gzip\" does not end with chunked");
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n"), why + "a folded header line");
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nnocolon\r\n\r\n"), why + "a header line without a name");
  EXPECT_EQ(error_of("GARBAGE\r\n\r\n"), why + "not an HTTP/1 request line");
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), why + "a chunk size line");
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n"),
            why + "chunk data longer than its size");
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nX: " + std::string(70000, 'a')), why + "a request head larger than 64 KiB");
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(5000, '1')),
            why + "a line longer than 4 KiB in a chunked body");
}

TEST(TlsSecretRewriter, QueryAndBodyOnlyWhenTheSecretSaysSo) {
  std::vector<SecretBinding> s = {{"API_KEY", kKeyHolder, "a&b=c d", {"api.example.test"}, true, true}};
  std::string body = "{\"key\": \"" + kKeyHolder + "\"}";
  std::string req = "POST /v1?key=" + kKeyHolder + "&x=1 HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\n\r\n" + body + "GET /next HTTP/1.1\r\n\r\n";
  std::string want_body = "{\"key\": \"a&b=c d\"}";
  for (std::size_t step : {std::size_t{1}, std::size_t{9}, std::size_t{1} << 20}) {
    auto out = run(s, "api.example.test", req, step);
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(*out, "POST /v1?key=a%26b%3Dc%20d&x=1 HTTP/1.1\r\nContent-Length: " + std::to_string(want_body.size()) +
                        "\r\n\r\n" + want_body + "GET /next HTTP/1.1\r\n\r\n")
        << "in pieces of " << step;
  }
  // Without the options, both stay placeholders.
  auto plain = secrets();
  auto out = run(plain, "api.example.test", req);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, req);
  // A body over 1 MiB passes as it is.
  std::string big(SecretRewriter::kMaxBody + 1, 'x');
  big.replace(10, kKeyHolder.size(), kKeyHolder);
  std::string large = "POST / HTTP/1.1\r\nContent-Length: " + std::to_string(big.size()) + "\r\n\r\n" + big;
  auto passed = run(s, "api.example.test", large, 65536);
  ASSERT_TRUE(passed.ok());
  EXPECT_EQ(*passed, large);
  auto twice = run(s, "api.example.test", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().message, "the request cannot be framed safely: two Content-Length headers");
}

TEST(TlsSecretRewriter, AChunkedBodyIsHeldAndSentAgainAsOneChunk) {
  std::vector<SecretBinding> s = {{"API_KEY", kKeyHolder, "sk-live-REAL", {"api.example.test"}, false, true}};
  std::string head = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string part1 = "{\"k\": \"" + kKeyHolder.substr(0, 20), part2 = kKeyHolder.substr(20) + "\"}";
  char size1[16], size2[16];
  std::snprintf(size1, sizeof size1, "%zx", part1.size());
  std::snprintf(size2, sizeof size2, "%zx;ext=1", part2.size());
  std::string req = head + size1 + "\r\n" + part1 + "\r\n" + size2 + "\r\n" + part2 + "\r\n0\r\nX-T: 1\r\n\r\n" +
                    "GET /next HTTP/1.1\r\n\r\n";
  std::string body = "{\"k\": \"sk-live-REAL\"}";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  std::string want = head + size + "\r\n" + body + "\r\n0\r\nX-T: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{7}, std::size_t{1} << 20}) {
    auto out = run(s, "api.example.test", req, step);
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(*out, want) << "in pieces of " << step;
  }
  // Past kMaxBody, the held start goes as one chunk and the rest as it comes.
  std::string big(SecretRewriter::kMaxBody, 'x');
  big.replace(0, kKeyHolder.size(), kKeyHolder);
  std::snprintf(size, sizeof size, "%zx", big.size());
  std::string large = head + size + "\r\n" + big + "\r\n3\r\nabc\r\n0\r\n\r\n";
  auto out = run(s, "api.example.test", large, 4096);
  ASSERT_TRUE(out.ok()) << out.error().message;
  std::string held = "sk-live-REAL" + big.substr(kKeyHolder.size());
  std::snprintf(size, sizeof size, "%zx", held.size());
  EXPECT_EQ(*out, head + size + "\r\n" + held + "\r\n3\r\nabc\r\n0\r\n\r\n");
}

TEST(TlsSecretRewriter, HeldBodiesShareOneBudget) {
  std::vector<SecretBinding> s = {{"API_KEY", kKeyHolder, "v", {"api.example.test"}, false, true}};
  std::size_t held = SecretRewriter::kMaxHeldTotal - 100;
  std::string body = kKeyHolder + std::string(40, 'x');
  std::string req = "POST / HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  {
    SecretRewriter within(s, "api.example.test", &held);
    std::string out;
    ASSERT_TRUE(within.feed(req + body.substr(0, 10), out).ok());
    EXPECT_EQ(out, "") << "held";
    EXPECT_EQ(held, SecretRewriter::kMaxHeldTotal - 100 + body.size());
    SecretRewriter past(s, "api.example.test", &held);
    std::string passed;
    ASSERT_TRUE(past.feed(req + body, passed).ok());
    EXPECT_EQ(passed, req + body) << "no room: passed as it is";
  }
  EXPECT_EQ(held, SecretRewriter::kMaxHeldTotal - 100) << "released with the rewriter";
}

TEST(TlsSecretRewriter, OnPlainHttpOnlyHttpSecretsAreBound) {
  std::vector<SecretBinding> s = {{"API_KEY", kKeyHolder, "sk", {"api.example.test"}},
                                  {"PLAIN", kTokenHolder, "plain-v", {"api.example.test"}, false, false, true}};
  SecretRewriter r(s, "api.example.test", nullptr, true);
  std::string out;
  ASSERT_TRUE(r.feed("GET / HTTP/1.1\r\nX-Key: " + kTokenHolder + "\r\n\r\n", out).ok());
  EXPECT_EQ(out, "GET / HTTP/1.1\r\nX-Key: plain-v\r\n\r\n");
  auto tls_only = r.feed("GET / HTTP/1.1\r\nAuthorization: " + kKeyHolder + "\r\n\r\n", out);
  ASSERT_FALSE(tls_only.ok()) << "a secret without :http may not cross plain HTTP";
  EXPECT_EQ(tls_only.error().code, EACCES);
}

TEST(TlsSecretRewriter, AfterConnectOrUpgradeTheBytesPassAsTheyAre) {
  auto s = secrets();
  std::string req = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05hello" + kKeyHolder;
  auto out = run(s, "api.example.test", req);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, req) << "no substitution inside a websocket";
}

}  // namespace
}  // namespace moat::tls
