// The certificate authority the shim signs its interception leaves with
// (docs/tls.md): one per $MOAT_HOME, made on first use, or one the user
// brings (`--tls-ca-cert/--tls-ca-key`). Sandboxes that intercept TLS trust
// it; nothing else does.
//
// Threat model: the CA's key is the most valuable secret moat keeps on the
// host. It is read only by the host side (the CLI when checking a user's
// pair, the shim when signing), never enters a VM, and is written once,
// mode 0600, in a 0700 directory. Files the user names are untrusted input:
// sizes are bounded and every parse failure is an error naming the file.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace moat::tls {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A certificate with its private key, as a TLS server presents them.
struct KeyedCertificate {
  X509Ptr certificate;
  PkeyPtr key;
};

// A PEM file larger than this is refused rather than read.
inline constexpr std::size_t kMaxPemFile = 1 << 20;

// The files of the per-installation CA under `dir` ($MOAT_HOME/tls).
std::string ca_certificate_path(const std::string& dir);
std::string ca_key_path(const std::string& dir);

class CertificateAuthority {
 public:
  // Loads the CA in `dir`, making it first if `dir` has none: a P-256 key
  // and a self-signed certificate valid for 10 years. Two processes making
  // it at once end with one CA: each writes a complete pair aside and
  // renames it into place; the loser loads the winner's.
  static Result<CertificateAuthority> load_or_create(const std::string& dir);

  // A CA the user brings: both files PEM, the key matching the certificate,
  // the certificate a CA (basicConstraints CA:TRUE) and valid now.
  static Result<CertificateAuthority> load(const std::string& certificate_path, const std::string& key_path);

  // The CA's certificate, PEM: what sandboxes add to their trust.
  const std::string& certificate_pem() const { return certificate_pem_; }

  // A leaf certificate for `name` (a DNS name, or an IPv4/IPv6 literal)
  // signed by this CA, with `key` as its public key: what the shim shows a
  // guest that connects to `name`. Valid from an hour ago (guest clocks
  // lag) for 30 days, never past the CA's own end.
  Result<X509Ptr> issue(std::string_view name, EVP_PKEY* key) const;

  X509* certificate() const { return certificate_.get(); }

 private:
  CertificateAuthority(KeyedCertificate pair, std::string pem)
      : certificate_(std::move(pair.certificate)), key_(std::move(pair.key)), certificate_pem_(std::move(pem)) {}

  X509Ptr certificate_;
  PkeyPtr key_;
  std::string certificate_pem_;
};

// The PEM certificates in `path` (a roots file such as --tls-upstream-ca),
// at most 10000. EINVAL naming the file when it cannot be read or holds
// none.
Result<std::vector<X509Ptr>> read_pem_certificates(const std::string& path);

// A new P-256 key (leaves share one per shim: generating is cheap, but
// there is no reason to make one per name).
Result<PkeyPtr> generate_p256_key();

}  // namespace moat::tls
