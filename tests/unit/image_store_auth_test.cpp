#include <gtest/gtest.h>

#include <fstream>

#include "../image/erofs_check.h"
#include "image/registry/http_client.h"
#include "image/registry/registry_auth.h"

namespace moat::image {
namespace {

TEST(ImageStoreAuth, ParsesBearerChallenge) {
  auto ch = parse_www_authenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push")");
  ASSERT_TRUE(ch.ok()) << ch.error().message;
  ASSERT_EQ(ch->size(), 1u);
  EXPECT_EQ((*ch)[0].scheme, "bearer");
  EXPECT_EQ((*ch)[0].params.at("realm"), "https://auth.docker.io/token");
  EXPECT_EQ((*ch)[0].params.at("service"), "registry.docker.io");
  EXPECT_EQ((*ch)[0].params.at("scope"), "repository:library/busybox:pull,push");
  EXPECT_EQ((*ch)[0].params.size(), 3u);
}

TEST(ImageStoreAuth, ParsesSeveralChallengesAndTokens) {
  auto ch = parse_www_authenticate(R"(Basic realm="Registry Realm", Bearer realm=x, error="a\"b")");
  ASSERT_TRUE(ch.ok()) << ch.error().message;
  ASSERT_EQ(ch->size(), 2u);
  EXPECT_EQ((*ch)[0].scheme, "basic");
  EXPECT_EQ((*ch)[0].params.at("realm"), "Registry Realm");
  EXPECT_EQ((*ch)[1].scheme, "bearer");
  EXPECT_EQ((*ch)[1].params.at("realm"), "x");
  EXPECT_EQ((*ch)[1].params.at("error"), "a\"b");
}

TEST(ImageStoreAuth, RejectsMalformedChallenges) {
  EXPECT_FALSE(parse_www_authenticate("").ok());
  EXPECT_FALSE(parse_www_authenticate(R"(Bearer realm="unterminated)").ok());
}

TEST(ImageStoreAuth, Base64RoundTrip) {
  EXPECT_EQ(base64_encode("user:pass"), "dXNlcjpwYXNz");
  EXPECT_EQ(base64_encode("ab"), "YWI=");
  auto d = base64_decode("YWI=");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, "ab");
  auto e = base64_decode("dXNlcjpwYXNz");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, "user:pass");
  EXPECT_FALSE(base64_decode("abc").ok());
}

TEST(ImageStoreAuth, ReadsDockerConfigAuths) {
  testing::TempDir tmp;
  std::string path = tmp / "config.json";
  std::ofstream(path) << R"({"auths":{
      "127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"},
      "https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldDpjb2xvbg=="},
      "r.example":{"username":"u2","password":"p2"}}})";
  auto local = docker_config_credentials("127.0.0.1:5000", path);
  ASSERT_TRUE(local.ok()) << local.error().message;
  ASSERT_TRUE(local->has_value());
  EXPECT_EQ((*local)->username, "user");
  EXPECT_EQ((*local)->password, "pass");
  auto hub = docker_config_credentials("docker.io", path);
  ASSERT_TRUE(hub.ok());
  ASSERT_TRUE(hub->has_value());
  EXPECT_EQ((*hub)->username, "hub");
  EXPECT_EQ((*hub)->password, "secret:colon");
  auto plain = docker_config_credentials("r.example", path);
  ASSERT_TRUE(plain.ok());
  ASSERT_TRUE(plain->has_value());
  EXPECT_EQ((*plain)->username, "u2");
  auto none = docker_config_credentials("other:5000", path);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto nofile = docker_config_credentials("x", tmp / "missing.json");
  ASSERT_TRUE(nofile.ok());
  EXPECT_FALSE(nofile->has_value());
  std::ofstream(tmp / "bad.json") << "[1]";
  EXPECT_FALSE(docker_config_credentials("x", tmp / "bad.json").ok());
}

TEST(ImageStoreAuth, UrlHelpers) {
  auto r = resolve_url("https://reg.io/v2/a/blobs/sha256:1", "/store/x?sig=1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "https://reg.io/store/x?sig=1");
  auto abs = resolve_url("https://reg.io/v2/a", "https://cdn.example:8443/y");
  ASSERT_TRUE(abs.ok());
  EXPECT_EQ(*abs, "https://cdn.example:8443/y");
  EXPECT_EQ(url_origin("https://Reg.IO/v2/"), "https://reg.io:443");
  EXPECT_EQ(url_origin("http://127.0.0.1:5000/v2/"), "http://127.0.0.1:5000");
  EXPECT_NE(url_origin("https://reg.io/"), url_origin("http://reg.io/"));
  EXPECT_EQ(url_escape("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
}

}  // namespace
}  // namespace moat::image
