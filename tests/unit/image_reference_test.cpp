#include "image/oci/reference.h"

#include <gtest/gtest.h>

#include <string>

#include "image/oci/digest.h"

namespace moat::image {
namespace {

const std::string kDigest =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::string canonical(const std::string& text) {
  auto ref = parse_reference(text);
  EXPECT_TRUE(ref.ok()) << text << ": " << ref.error().message;
  return ref.ok() ? ref->to_string() : "";
}

TEST(ImageReference, DockerHubDefaults) {
  EXPECT_EQ(canonical("busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(canonical("busybox:1.36"), "docker.io/library/busybox:1.36");
  EXPECT_EQ(canonical("user/x"), "docker.io/user/x:latest");
  EXPECT_EQ(canonical("docker.io/busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(canonical("index.docker.io/user/x:t"), "docker.io/user/x:t");
  auto ref = parse_reference("python:3.12");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->registry, "docker.io");
  EXPECT_EQ(ref->repository, "library/python");
  EXPECT_EQ(ref->tag, "3.12");
  EXPECT_EQ(ref->api_host(), "registry-1.docker.io");
}

TEST(ImageReference, RegistriesWithPorts) {
  auto ref = parse_reference("localhost:5000/a/b:t");
  ASSERT_TRUE(ref.ok()) << ref.error().message;
  EXPECT_EQ(ref->registry, "localhost:5000");
  EXPECT_EQ(ref->repository, "a/b");
  EXPECT_EQ(ref->tag, "t");
  EXPECT_EQ(ref->api_host(), "localhost:5000");
  EXPECT_EQ(canonical("127.0.0.1:5000/x"), "127.0.0.1:5000/x:latest");
  EXPECT_EQ(canonical("localhost/x"), "localhost/x:latest");
  EXPECT_EQ(canonical("ghcr.io/org/team/img:v1.2.3-rc_1"), "ghcr.io/org/team/img:v1.2.3-rc_1");
  EXPECT_EQ(canonical("[::1]:5000/x:y"), "[::1]:5000/x:y");
  EXPECT_EQ(canonical("my-registry.example.com/a"), "my-registry.example.com/a:latest");
}

TEST(ImageReference, Digests) {
  auto ref = parse_reference("busybox@" + kDigest);
  ASSERT_TRUE(ref.ok()) << ref.error().message;
  EXPECT_EQ(ref->tag, "");
  EXPECT_EQ(ref->digest, kDigest);
  EXPECT_EQ(ref->to_string(), "docker.io/library/busybox@" + kDigest);
  EXPECT_EQ(canonical("localhost:5000/a:t@" + kDigest), "localhost:5000/a:t@" + kDigest);
}

TEST(ImageReference, SeparatorsInComponents) {
  EXPECT_EQ(canonical("x/a.b_c__d---e"), "docker.io/x/a.b_c__d---e:latest");
  for (const char* bad : {"a..b", "a___b", "_a", "a_", "a.", "-a", "a-", "a+b"}) {
    EXPECT_FALSE(parse_reference(std::string("x/") + bad).ok()) << bad;
  }
}

void expect_error(const std::string& text, const std::string& fragment) {
  auto ref = parse_reference(text);
  ASSERT_FALSE(ref.ok()) << text << " parsed as " << ref->to_string();
  EXPECT_NE(ref.error().message.find(fragment), std::string::npos)
      << text << ": " << ref.error().message;
}

TEST(ImageReference, MalformedReferences) {
  expect_error("", "empty");
  expect_error("docker.io/Busybox", "lowercase");
  expect_error("user/Foo:tag", "lowercase");
  expect_error("a//b", "empty path component");
  expect_error("a/", "empty path component");
  expect_error("/a", "");
  expect_error(":tag", "empty repository");
  expect_error("busybox:", "empty tag");
  expect_error("busybox:-x", "tag must start");
  expect_error("busybox:a/b", "");
  expect_error("busybox:a$b", "invalid character in tag");
  expect_error("busybox:" + std::string(129, 'a'), "longer than 128");
  expect_error("busybox@sha256:abc", "64 hex");
  expect_error("busybox@sha256:" + std::string(64, 'A'), "lowercase hex");
  expect_error("busybox@md5:" + std::string(32, 'a'), "unsupported digest algorithm");
  expect_error("busybox@", "invalid digest");
  expect_error("localhost:99999/x", "port");
  expect_error("localhost:/x", "port");
  expect_error("bad_host.com/x", "registry host");
  expect_error("a/" + std::string(300, 'b'), "too long");
}

TEST(ImageReference, TagAtMaximumLength) {
  EXPECT_TRUE(parse_reference("busybox:" + std::string(128, 'a')).ok());
}

TEST(ImageDigest, Validation) {
  EXPECT_TRUE(validate_digest(kDigest).ok());
  EXPECT_FALSE(validate_digest("sha256:").ok());
  EXPECT_FALSE(validate_digest(kDigest + "0").ok());
  EXPECT_FALSE(validate_digest("sha512:" + std::string(128, 'a')).ok());
  EXPECT_EQ(sha256_digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace moat::image
