#include "tls/leaf_cache.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <filesystem>

namespace moat::tls {
namespace {

class TlsLeafCache : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "moat-leaves-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    home_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  LeafCache make(std::size_t capacity) {
    auto ca = CertificateAuthority::load_or_create(home_ + "/tls");
    auto key = generate_p256_key();
    return LeafCache(std::move(*ca), std::move(*key), capacity);
  }

  std::string home_;
};

TEST_F(TlsLeafCache, ANameIsSignedOnceAndComparedInLowerCase) {
  LeafCache cache = make(8);
  auto a = cache.leaf_for("API.Example.test");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(X509_check_host(*a, "api.example.test", 0, 0, nullptr), 1);
  auto b = cache.leaf_for("api.example.test");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(cache.signed_count(), 1u);
  // The leaf's key is the cache's.
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(*a), cache.key()), 1);
}

TEST_F(TlsLeafCache, TheLeastRecentlyUsedNameGoesFirst) {
  LeafCache cache = make(2);
  ASSERT_TRUE(cache.leaf_for("a.test").ok());
  ASSERT_TRUE(cache.leaf_for("b.test").ok());
  ASSERT_TRUE(cache.leaf_for("a.test").ok());  // b.test is now the oldest
  ASSERT_TRUE(cache.leaf_for("c.test").ok());
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.signed_count(), 3u);
  ASSERT_TRUE(cache.leaf_for("a.test").ok());
  EXPECT_EQ(cache.signed_count(), 3u) << "a.test stayed";
  ASSERT_TRUE(cache.leaf_for("b.test").ok());
  EXPECT_EQ(cache.signed_count(), 4u) << "b.test was signed again";
}

TEST_F(TlsLeafCache, ABadNameIsRefusedAndNotKept) {
  LeafCache cache = make(2);
  auto bad = cache.leaf_for("evil.test,DNS:bank.test");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, EINVAL);
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace moat::tls
