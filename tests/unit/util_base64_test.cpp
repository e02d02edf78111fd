// util/base64.h: the one base64 of registry credentials and the TLS secret
// rewriter's Basic credentials.
#include "util/base64.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

namespace moat {
namespace {

// RFC 4648 section 10.
const std::vector<std::pair<std::string, std::string>> kVectors = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(Base64, EncodesTheRfcVectors) {
  for (const auto& [plain, encoded] : kVectors) EXPECT_EQ(base64_encode(plain), encoded) << plain;
}

TEST(Base64, DecodesTheRfcVectors) {
  for (const auto& [plain, encoded] : kVectors) {
    auto d = base64_decode(encoded);
    ASSERT_TRUE(d.ok()) << encoded << ": " << d.error().message;
    EXPECT_EQ(*d, plain) << encoded;
  }
}

TEST(Base64, EveryByteRoundTrips) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  for (std::size_t len = 0; len <= all.size(); len += 37) {
    std::string part = all.substr(all.size() - len);
    auto d = base64_decode(base64_encode(part));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, part);
  }
  EXPECT_EQ(base64_encode("\xfb\xff\xbf"), "+/+/");
}

TEST(Base64, RejectsBadCharactersAndPadding) {
  for (const std::string& bad : std::vector<std::string>{
           "Zm9",        // not a multiple of four
           "Zg=",        // padding short
           "Zg",         // unpadded
           "Zm9\n",      // a line break
           "Zm9vYm\r\n", // a CRLF
           " Zm9",       // whitespace
           "Zm 9",       // whitespace inside
           "Zm-_",       // the URL-safe alphabet
           "Zm9*",       // not base64 at all
           "=Zm9",       // padding first
           "Z=9v",       // padding inside a group
           "Zg==Zm8=",   // padding before the end
           "Z===",       // three padding characters
           "====",       // only padding
           std::string("Zm\0v", 4),
       }) {
    auto d = base64_decode(bad);
    EXPECT_FALSE(d.ok()) << "\"" << bad << "\" decoded";
    EXPECT_EQ(d.error().code, EINVAL) << bad;
  }
}

// The unused low bits of a padded last group are not checked, as OpenSSL's
// and Go's (Docker's) decoders do not check them.
TEST(Base64, IgnoresUnusedBitsOfTheLastGroup) {
  auto d = base64_decode("Zh==");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, "f");
}

}  // namespace
}  // namespace moat
