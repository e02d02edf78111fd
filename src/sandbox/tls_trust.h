// A sandbox that intercepts TLS (docs/tls.md): the CA it signs with,
// settled at create, and what its guest is given to trust that CA.
#pragma once

#include <string>
#include <vector>

#include "moat/network.h"
#include "moat/sandbox.h"

namespace moat::sandbox {

// Settles `tls` for a new sandbox: the user's CA pair checked (or the
// installation's, made on first use under `home`/tls) and both paths made
// absolute, the upstream roots file checked and made absolute. Returns the
// CA certificate (PEM). EINVAL naming the file for a bad one.
Result<std::string> settle_tls_ca(const std::string& home, TlsInterception& tls);

// Where the guest finds the CA on its own.
inline constexpr const char* kGuestCaFile = "/etc/moat/tls/ca.crt";

struct TlsTrust {
  std::vector<RootPatch> patches;  // the bundles with the CA appended, and kGuestCaFile
  std::vector<std::string> env;    // SSL_CERT_FILE=... and the like, for every command
};

// The patches and environment that make the guest trust `ca_pem`, given the
// root's read-only lower (an EROFS image). Each distribution bundle the
// lower has (a symlink is followed inside the root) gets the CA appended
// once; SSL_CERT_FILE, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE name the first
// bundle (system roots and the CA), or kGuestCaFile when there is none;
// NODE_EXTRA_CA_CERTS names kGuestCaFile.
Result<TlsTrust> tls_trust_for(const std::string& lower_erofs, const std::string& ca_pem);

}  // namespace moat::sandbox
