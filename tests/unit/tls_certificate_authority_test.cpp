#include "tls/certificate_authority.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace moat::tls {
namespace {

struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void spill(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string pem_of(X509* cert) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(b);
  return out;
}

std::string pem_of(EVP_PKEY* key) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(b);
  return out;
}

// What a strict client (Python 3.13's default context sets X509_STRICT)
// decides about `leaf` for a TLS server, trusting only `ca`.
int verify_as_server(X509* ca, X509* leaf) {
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca);
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_X509_STRICT);
  if (X509_verify_cert(ctx.get()) == 1) return X509_V_OK;
  return X509_STORE_CTX_get_error(ctx.get());
}

// A CA certificate made here, as a user would bring one: `days` of
// validity, CA:TRUE unless `is_ca` is false, keyUsage unless `key_usage`
// is false.
KeyedCertificate user_certificate(int days, bool is_ca, bool key_usage = true) {
  auto key = generate_p256_key();
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("user ca"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24L * 3600 * days);
  X509_set_pubkey(cert.get(), key->get());
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  X509_EXTENSION* bc =
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  X509_add_ext(cert.get(), bc, -1);
  X509_EXTENSION_free(bc);
  if (key_usage) {
    X509_EXTENSION* ku = X509V3_EXT_conf_nid(nullptr, &ctx, NID_key_usage, "critical,keyCertSign");
    X509_add_ext(cert.get(), ku, -1);
    X509_EXTENSION_free(ku);
  }
  X509_EXTENSION* ski = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_key_identifier, "hash");
  X509_add_ext(cert.get(), ski, -1);
  X509_EXTENSION_free(ski);
  X509_sign(cert.get(), key->get(), EVP_sha256());
  return KeyedCertificate{std::move(cert), std::move(*key)};
}

class TlsCertificateAuthority : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "moat-tls-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    home_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  // Writes `pair` as a user's ca.crt/ca.key pair; returns {cert, key} paths.
  std::pair<std::string, std::string> write_user_pair(const KeyedCertificate& pair) {
    std::string cert = home_ + "/user.crt", key = home_ + "/user.key";
    spill(cert, pem_of(pair.certificate.get()));
    spill(key, pem_of(pair.key.get()));
    return {cert, key};
  }

  std::string home_;
};

TEST_F(TlsCertificateAuthority, FirstUseMakesAPrivateCaAndLaterUsesLoadIt) {
  std::string dir = home_ + "/tls";
  auto made = CertificateAuthority::load_or_create(dir);
  ASSERT_TRUE(made.ok()) << made.error().message;

  struct stat st{};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat(ca_key_path(dir).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(slurp(ca_certificate_path(dir)), made->certificate_pem());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(home_), std::filesystem::directory_iterator()), 1)
      << "no staging directory is left beside it";

  // A P-256 CA, valid for about ten years, for signing certificates only.
  X509* ca = made->certificate();
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(ca)), EVP_PKEY_EC);
  EXPECT_EQ(X509_check_ca(ca), 1);
  EXPECT_TRUE(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
  int days = 0, seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(ca), X509_get0_notAfter(ca)), 1);
  EXPECT_GE(days, 3650);

  auto again = CertificateAuthority::load_or_create(dir);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->certificate_pem(), made->certificate_pem());
}

TEST_F(TlsCertificateAuthority, MakersAtOnceEndWithOneCa) {
  std::string dir = home_ + "/tls";
  std::vector<std::string> pems(6);
  std::vector<std::string> errors(6);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < pems.size(); ++i) {
    threads.emplace_back([&, i] {
      auto ca = CertificateAuthority::load_or_create(dir);
      if (ca) pems[i] = ca->certificate_pem();
      else errors[i] = ca.error().message;
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < pems.size(); ++i) {
    EXPECT_EQ(errors[i], "");
    EXPECT_EQ(pems[i], slurp(ca_certificate_path(dir)));
  }
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(home_), std::filesystem::directory_iterator()), 1);
}

TEST_F(TlsCertificateAuthority, LeavesVerifyForTheirNameUnderStrictChecks) {
  auto ca = CertificateAuthority::load_or_create(home_ + "/tls");
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  auto key = generate_p256_key();
  ASSERT_TRUE(key.ok());

  auto leaf = ca->issue("api.example.test", key->get());
  ASSERT_TRUE(leaf.ok()) << leaf.error().message;
  EXPECT_EQ(verify_as_server(ca->certificate(), leaf->get()), X509_V_OK);
  EXPECT_EQ(X509_check_host(leaf->get(), "api.example.test", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(leaf->get(), "other.example.test", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ca(leaf->get()), 0);

  auto v4 = ca->issue("127.0.0.1", key->get());
  ASSERT_TRUE(v4.ok()) << v4.error().message;
  EXPECT_EQ(verify_as_server(ca->certificate(), v4->get()), X509_V_OK);
  EXPECT_EQ(X509_check_ip_asc(v4->get(), "127.0.0.1", 0), 1);
  auto v6 = ca->issue("::1", key->get());
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(X509_check_ip_asc(v6->get(), "::1", 0), 1);

  // A guest clock that lags by minutes still accepts it; it ends in 30 days.
  int days = 0, seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(leaf->get()), X509_get0_notAfter(leaf->get())), 1);
  EXPECT_NEAR(days * 86400L + seconds, 30L * 86400 + 3600, 2);
}

TEST_F(TlsCertificateAuthority, NamesACertificateCannotHoldAreRefused) {
  auto ca = CertificateAuthority::load_or_create(home_ + "/tls");
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  auto key = generate_p256_key();
  for (std::string bad : {std::string(""), std::string("a,DNS:evil.test"), std::string("a..b"), std::string(".a"),
                          std::string("a."), std::string("sp ace.test"), std::string("nul\0.test", 9),
                          std::string(64, 'x') + ".test", std::string(254, 'a'), std::string("*.example.test")}) {
    auto leaf = ca->issue(bad, key->get());
    ASSERT_FALSE(leaf.ok()) << bad;
    EXPECT_EQ(leaf.error().code, EINVAL) << bad;
  }
  EXPECT_TRUE(ca->issue(std::string(63, 'x') + ".test", key->get()).ok());
}

TEST_F(TlsCertificateAuthority, AUsersCaSignsLeavesThatEndWithIt) {
  auto user = user_certificate(2, true);
  auto [cert, key] = write_user_pair(user);
  auto ca = CertificateAuthority::load(cert, key);
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  EXPECT_EQ(ca->certificate_pem(), pem_of(user.certificate.get()));
  auto leaf_key = generate_p256_key();
  auto leaf = ca->issue("api.example.test", leaf_key->get());
  ASSERT_TRUE(leaf.ok()) << leaf.error().message;
  EXPECT_EQ(ASN1_TIME_compare(X509_get0_notAfter(leaf->get()), X509_get0_notAfter(user.certificate.get())), 0);
  EXPECT_EQ(verify_as_server(user.certificate.get(), leaf->get()), X509_V_OK);
}

TEST_F(TlsCertificateAuthority, BadUserFilesAreRefusedWithTheFileAndTheReason) {
  auto user = user_certificate(2, true);
  auto [cert, key] = write_user_pair(user);
  auto expect_error = [](const Result<CertificateAuthority>& r, const std::string& part) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EINVAL) << r.error().message;
    EXPECT_NE(r.error().message.find(part), std::string::npos) << r.error().message;
  };

  spill(home_ + "/garbage", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
  expect_error(CertificateAuthority::load(home_ + "/garbage", key), home_ + "/garbage: not a PEM certificate");
  expect_error(CertificateAuthority::load(cert, home_ + "/garbage"), home_ + "/garbage: not a PEM private key");

  auto other = generate_p256_key();
  spill(home_ + "/other.key", pem_of(other->get()));
  expect_error(CertificateAuthority::load(cert, home_ + "/other.key"),
               home_ + "/other.key: this key does not belong to the certificate in " + cert);

  auto leaf = user_certificate(2, false);
  auto [leaf_cert, leaf_key] = write_user_pair(leaf);
  expect_error(CertificateAuthority::load(leaf_cert, leaf_key), leaf_cert + ": not a CA certificate");

  auto no_usage = user_certificate(2, true, false);
  auto [no_usage_cert, no_usage_key] = write_user_pair(no_usage);
  expect_error(CertificateAuthority::load(no_usage_cert, no_usage_key),
               no_usage_cert + ": clients would refuse the certificates this CA signs: CA cert does not include key usage extension");

  auto expired = user_certificate(-1, true);
  auto [old_cert, old_key] = write_user_pair(expired);
  expect_error(CertificateAuthority::load(old_cert, old_key), old_cert + ": the certificate has expired");

  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, user.key.get(), EVP_aes_128_cbc(), reinterpret_cast<const unsigned char*>("pw"), 2,
                           nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(b, &data);
  spill(home_ + "/encrypted.key", std::string(data, static_cast<std::size_t>(len)));
  BIO_free(b);
  expect_error(CertificateAuthority::load(cert, home_ + "/encrypted.key"), "an encrypted private key");

  auto missing = CertificateAuthority::load(home_ + "/none.crt", key);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find(home_ + "/none.crt"), std::string::npos);

  spill(home_ + "/huge.crt", std::string(kMaxPemFile + 1, 'A'));
  auto huge = CertificateAuthority::load(home_ + "/huge.crt", key);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, EFBIG);
}

}  // namespace
}  // namespace moat::tls
