#include "tls/certificate_authority.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "tls/openssl_errors.h"
#include "util/read_file.h"
#include "util/unique_fd.h"
#include "util/write_all.h"

namespace moat::tls {
namespace {

constexpr long kCaValiditySeconds = 10L * 365 * 24 * 3600;
constexpr long kLeafValiditySeconds = 30L * 24 * 3600;
constexpr long kClockSkewSeconds = 3600;
constexpr std::size_t kMaxDnsName = 253;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* e) const { X509_EXTENSION_free(e); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};

Error openssl_error(const std::string& what, int code = EPROTO) {
  return Error{code, what + ": " + openssl_reason()};
}

Result<std::string> read_pem_file(const std::string& path) { return read_file_bounded(path, kMaxPemFile); }

// Never prompts for a passphrase (OpenSSL's default would read the tty):
// an encrypted key is refused with a reason instead.
int no_passphrase(char*, int, int, void*) { return -1; }

Result<KeyedCertificate> parse_pair(const std::string& cert_text, const std::string& cert_path,
                                    const std::string& key_text, const std::string& key_path) {
  ERR_clear_error();
  BioPtr cb(BIO_new_mem_buf(cert_text.data(), static_cast<int>(cert_text.size())));
  X509Ptr cert(cb ? PEM_read_bio_X509(cb.get(), nullptr, no_passphrase, nullptr) : nullptr);
  if (!cert) return openssl_error(cert_path + ": not a PEM certificate", EINVAL);
  BioPtr kb(BIO_new_mem_buf(key_text.data(), static_cast<int>(key_text.size())));
  PkeyPtr key(kb ? PEM_read_bio_PrivateKey(kb.get(), nullptr, no_passphrase, nullptr) : nullptr);
  if (!key) {
    if (key_text.find("ENCRYPTED") != std::string::npos)
      return make_error(key_path + ": an encrypted private key; give one without a passphrase", EINVAL);
    return openssl_error(key_path + ": not a PEM private key", EINVAL);
  }
  return KeyedCertificate{std::move(cert), std::move(key)};
}

Status check_usable_ca(const KeyedCertificate& pair, const std::string& cert_path, const std::string& key_path) {
  ERR_clear_error();
  if (X509_check_private_key(pair.certificate.get(), pair.key.get()) != 1)
    return make_error(key_path + ": this key does not belong to the certificate in " + cert_path, EINVAL);
  if (X509_check_ca(pair.certificate.get()) < 1)
    return make_error(cert_path + ": not a CA certificate (it needs basicConstraints CA:TRUE)", EINVAL);
  if (X509_cmp_current_time(X509_get0_notBefore(pair.certificate.get())) >= 0)
    return make_error(cert_path + ": the certificate is not valid yet", EINVAL);
  if (X509_cmp_current_time(X509_get0_notAfter(pair.certificate.get())) <= 0)
    return make_error(cert_path + ": the certificate has expired", EINVAL);
  return ok_status();
}

Result<std::string> to_pem(X509* cert) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509(b.get(), cert) != 1) return openssl_error("encoding a certificate", ENOMEM);
  char* data = nullptr;
  long len = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

Result<std::string> key_to_pem(EVP_PKEY* key) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return openssl_error("encoding a private key", ENOMEM);
  char* data = nullptr;
  long len = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// Ed25519 and Ed448 sign without a separate digest; every other key with SHA-256.
const EVP_MD* digest_for(EVP_PKEY* key) {
  int id = EVP_PKEY_get_base_id(key);
  return (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? nullptr : EVP_sha256();
}

Status add_conf_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return openssl_error(std::string("adding the certificate extension ") + OBJ_nid2sn(nid), ENOMEM);
  return ok_status();
}

Status set_random_serial(X509* cert) {
  std::unique_ptr<BIGNUM, BnFree> bn(BN_new());
  // 127 random bits: positive, and as unpredictable as the baseline asks.
  if (!bn || BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)))
    return openssl_error("making a serial number", ENOMEM);
  return ok_status();
}

// Whether `name` may stand in a certificate as a DNS name: what a guest's
// SNI says is untrusted, so only letters, digits, '-', '_' and dots between
// non-empty labels of at most 63 bytes.
bool is_certificate_dns_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxDnsName) return false;
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label > 0;
}

// The subjectAltName of a leaf for `name`, built entry by entry (a text
// form would let a comma in an SNI add names of its own).
Status add_subject_alt_name(X509* cert, std::string_view name) {
  std::string text(name);
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(sk_GENERAL_NAME_new_null());
  GENERAL_NAME* entry = GENERAL_NAME_new();
  if (!names || !entry) {
    GENERAL_NAME_free(entry);
    return make_error("allocating a subjectAltName", ENOMEM);
  }
  sk_GENERAL_NAME_push(names.get(), entry);
  unsigned char ip[16];
  int ip_len = ::inet_pton(AF_INET, text.c_str(), ip) == 1 ? 4 : ::inet_pton(AF_INET6, text.c_str(), ip) == 1 ? 16 : 0;
  if (ip_len) {
    ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
    if (!os || ASN1_OCTET_STRING_set(os, ip, ip_len) != 1) {
      ASN1_OCTET_STRING_free(os);
      return make_error("allocating a subjectAltName", ENOMEM);
    }
    GENERAL_NAME_set0_value(entry, GEN_IPADD, os);
  } else {
    if (!is_certificate_dns_name(name)) return make_error("not a name a certificate can hold: " + text, EINVAL);
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    if (!s || ASN1_STRING_set(s, text.data(), static_cast<int>(text.size())) != 1) {
      ASN1_IA5STRING_free(s);
      return make_error("allocating a subjectAltName", ENOMEM);
    }
    GENERAL_NAME_set0_value(entry, GEN_DNS, s);
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1)
    return openssl_error("adding the subjectAltName", ENOMEM);
  return ok_status();
}

Status set_common_name(X509_NAME* subject, std::string_view text) {
  std::string cn(text.substr(0, 64));  // the upper bound X.520 gives a CN
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1)
    return openssl_error("setting the certificate's subject", ENOMEM);
  return ok_status();
}

Result<KeyedCertificate> make_ca() {
  MOAT_ASSIGN_OR_RETURN(auto key, generate_p256_key());
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return openssl_error("making the CA certificate", ENOMEM);
  MOAT_TRY(set_random_serial(cert.get()));
  unsigned char tag[4];
  if (RAND_bytes(tag, sizeof tag) != 1) return openssl_error("making the CA certificate", EIO);
  char hex[9];
  std::snprintf(hex, sizeof hex, "%02x%02x%02x%02x", tag[0], tag[1], tag[2], tag[3]);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("moat"), -1, -1,
                                 0) != 1)
    return openssl_error("setting the CA's subject", ENOMEM);
  MOAT_TRY(set_common_name(subject, std::string("moat sandbox TLS interception CA ") + hex));
  if (X509_set_issuer_name(cert.get(), subject) != 1 || !X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kClockSkewSeconds) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), kCaValiditySeconds) || X509_set_pubkey(cert.get(), key.get()) != 1)
    return openssl_error("making the CA certificate", ENOMEM);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  MOAT_TRY(add_conf_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  MOAT_TRY(add_conf_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  MOAT_TRY(add_conf_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  MOAT_TRY(add_conf_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return openssl_error("signing the CA certificate", EIO);
  return KeyedCertificate{std::move(cert), std::move(key)};
}

Status write_new_file(const std::string& path, const std::string& data, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd) return errno_error("create " + path);
  MOAT_TRY(write_all(fd.get(), data, "write " + path));
  if (::fsync(fd.get()) != 0) return errno_error("fsync " + path);
  return ok_status();
}

void remove_staging(const std::string& staging) {
  ::unlink(ca_key_path(staging).c_str());
  ::unlink(ca_certificate_path(staging).c_str());
  ::rmdir(staging.c_str());
}

// Makes a CA in a directory beside `dir` and renames it into place. False
// when another process got there first (its CA stands).
Result<bool> create_ca_dir(const std::string& dir) {
  MOAT_ASSIGN_OR_RETURN(auto pair, make_ca());
  MOAT_ASSIGN_OR_RETURN(auto cert_pem, to_pem(pair.certificate.get()));
  MOAT_ASSIGN_OR_RETURN(auto key_pem, key_to_pem(pair.key.get()));
  unsigned char nonce[8];
  if (RAND_bytes(nonce, sizeof nonce) != 1) return openssl_error("naming the CA's staging directory", EIO);
  std::string staging = dir + ".new-";
  for (unsigned char b : nonce) staging += "0123456789abcdef"[b >> 4], staging += "0123456789abcdef"[b & 15];
  if (::mkdir(staging.c_str(), 0700) != 0) return errno_error("mkdir " + staging);
  Status written = write_new_file(ca_key_path(staging), key_pem, 0600);
  if (written) written = write_new_file(ca_certificate_path(staging), cert_pem, 0644);
  if (!written) {
    remove_staging(staging);
    return written.error();
  }
  if (::rename(staging.c_str(), dir.c_str()) != 0) {
    int err = errno;
    remove_staging(staging);
    if (err == EEXIST || err == ENOTEMPTY) return false;
    errno = err;
    return errno_error("rename " + staging + " to " + dir);
  }
  return true;
}

struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};

// Why a client that trusts only `ca` and checks strictly (X509_STRICT, as
// Python 3.13 does by default) would refuse `leaf` as a TLS server's
// certificate; empty when it would accept it.
std::string strict_refusal(X509* ca, X509* leaf) {
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr) != 1)
    return "out of memory";
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_X509_STRICT);
  if (X509_verify_cert(ctx.get()) == 1) return "";
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

}  // namespace

std::string ca_certificate_path(const std::string& dir) { return dir + "/ca.crt"; }
std::string ca_key_path(const std::string& dir) { return dir + "/ca.key"; }

Result<std::vector<X509Ptr>> read_pem_certificates(const std::string& path) {
  ERR_clear_error();
  auto text = read_pem_file(path);
  if (!text) return Error{EINVAL, text.error().message};
  BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  std::vector<X509Ptr> out;
  while (bio && out.size() < 10000) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
    if (!cert) break;
    out.push_back(std::move(cert));
  }
  ERR_clear_error();  // the read that ended the list
  if (out.empty()) return make_error(path + ": no PEM certificate in it", EINVAL);
  return out;
}

Result<PkeyPtr> generate_p256_key() {
  ERR_clear_error();
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return openssl_error("generating a P-256 key", ENOMEM);
  return key;
}

Result<CertificateAuthority> CertificateAuthority::load(const std::string& certificate_path,
                                                        const std::string& key_path) {
  MOAT_ASSIGN_OR_RETURN(auto cert_text, read_pem_file(certificate_path));
  MOAT_ASSIGN_OR_RETURN(auto key_text, read_pem_file(key_path));
  MOAT_ASSIGN_OR_RETURN(auto pair, parse_pair(cert_text, certificate_path, key_text, key_path));
  MOAT_TRY(check_usable_ca(pair, certificate_path, key_path));
  MOAT_ASSIGN_OR_RETURN(auto pem, to_pem(pair.certificate.get()));
  CertificateAuthority ca(std::move(pair), std::move(pem));
  // The check that matters: would a strict client accept what it signs?
  MOAT_ASSIGN_OR_RETURN(auto probe_key, generate_p256_key());
  MOAT_ASSIGN_OR_RETURN(auto probe, ca.issue("probe.moat.internal", probe_key.get()));
  std::string refusal = strict_refusal(ca.certificate(), probe.get());
  if (!refusal.empty())
    return make_error(certificate_path + ": clients would refuse the certificates this CA signs: " + refusal, EINVAL);
  return ca;
}

Result<CertificateAuthority> CertificateAuthority::load_or_create(const std::string& dir) {
  struct stat st{};
  if (::stat(ca_certificate_path(dir).c_str(), &st) != 0) {
    if (errno != ENOENT) return errno_error("stat " + ca_certificate_path(dir));
    auto made = create_ca_dir(dir);
    if (!made) return made.error().wrap("making the TLS interception CA in " + dir);
  }
  return load(ca_certificate_path(dir), ca_key_path(dir));
}

Result<X509Ptr> CertificateAuthority::issue(std::string_view name, EVP_PKEY* key) const {
  ERR_clear_error();
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return openssl_error("making a certificate", ENOMEM);
  MOAT_TRY(add_subject_alt_name(cert.get(), name));
  MOAT_TRY(set_random_serial(cert.get()));
  MOAT_TRY(set_common_name(X509_get_subject_name(cert.get()), name));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(certificate_.get())) != 1 ||
      !X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kClockSkewSeconds) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), kLeafValiditySeconds) || X509_set_pubkey(cert.get(), key) != 1)
    return openssl_error("making a certificate for " + std::string(name), ENOMEM);
  // Never outlive the CA: a client would refuse the chain.
  const ASN1_TIME* ca_end = X509_get0_notAfter(certificate_.get());
  if (ASN1_TIME_compare(X509_get0_notAfter(cert.get()), ca_end) > 0 && X509_set1_notAfter(cert.get(), ca_end) != 1)
    return openssl_error("making a certificate for " + std::string(name), ENOMEM);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, certificate_.get(), cert.get(), nullptr, nullptr, 0);
  MOAT_TRY(add_conf_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
  MOAT_TRY(add_conf_extension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature"));
  MOAT_TRY(add_conf_extension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth"));
  MOAT_TRY(add_conf_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  MOAT_TRY(add_conf_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), key_.get(), digest_for(key_.get())) <= 0)
    return openssl_error("signing a certificate for " + std::string(name), EIO);
  return cert;
}

}  // namespace moat::tls
