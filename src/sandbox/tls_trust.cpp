#include "sandbox/tls_trust.h"

#include <climits>
#include <cstdlib>

#include "image/erofs/erofs_reader.h"
#include "store/guest_path.h"
#include "store/upper_patch.h"
#include "tls/certificate_authority.h"

namespace moat::sandbox {
namespace {

// The bundles distributions keep their roots in, in the order they are
// preferred for SSL_CERT_FILE.
constexpr const char* kBundles[] = {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                                    "/etc/ssl/cert.pem"};
constexpr int kMaxSymlinkHops = 8;

Result<std::string> absolute(const std::string& path, const char* flag) {
  char resolved[PATH_MAX];
  if (!::realpath(path.c_str(), resolved)) return errno_error(std::string(flag) + " " + path);
  return std::string(resolved);
}

// The regular file `path` leads to inside the lower, following symlinks
// (relative ones from their directory, absolute ones from the root);
// nullopt if it leads nowhere or to something else.
Result<std::optional<std::string>> resolve_in_lower(const image::ErofsReader& lower, std::string path) {
  for (int hop = 0; hop <= kMaxSymlinkHops; ++hop) {
    auto nid = lower.lookup_path(path);
    if (!nid) {
      if (nid.error().code == ENOENT || nid.error().code == ENOTDIR) return std::optional<std::string>{};
      return nid.error();
    }
    MOAT_ASSIGN_OR_RETURN(auto inode, lower.inode(*nid));
    if (inode.is_regular()) return std::optional<std::string>(path);
    if (!inode.is_symlink()) return std::optional<std::string>{};
    auto link = lower.readlink(inode);
    if (!link) return link.error();
    std::string next = path.substr(0, path.rfind('/') + 1) + *link;
    if (!link->empty() && link->front() == '/') next = *link;
    auto parts = store::split_guest_path(next);
    if (!parts) return std::optional<std::string>{};  // climbs out of the root: not a bundle
    path = store::join_guest_path(*parts);
  }
  return std::optional<std::string>{};
}

Result<std::string> read_lower_file(const image::ErofsReader& lower, const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(auto nid, lower.lookup_path(path));
  MOAT_ASSIGN_OR_RETURN(auto inode, lower.inode(nid));
  if (inode.size > store::kMaxPatchText)
    return make_error("the image's CA bundle " + path + " is larger than " + std::to_string(store::kMaxPatchText) +
                          " bytes",
                      EFBIG);
  std::string data(inode.size, '\0');
  MOAT_ASSIGN_OR_RETURN(auto n, lower.read(nid, 0, data.data(), data.size()));
  data.resize(n);
  return data;
}

RootPatch write_patch(const std::string& path, std::string text) {
  RootPatch p;
  p.kind = RootPatch::Kind::kWrite;
  p.guest_path = path;
  p.text = std::move(text);
  p.mode = 0644;
  return p;
}

}  // namespace

Result<std::string> settle_tls_ca(const std::string& home, TlsInterception& tls) {
  std::string pem;
  if (!tls.ca_certificate_file.empty()) {
    MOAT_ASSIGN_OR_RETURN(tls.ca_certificate_file, absolute(tls.ca_certificate_file, "--tls-ca-cert"));
    MOAT_ASSIGN_OR_RETURN(tls.ca_key_file, absolute(tls.ca_key_file, "--tls-ca-key"));
    auto ca = tls::CertificateAuthority::load(tls.ca_certificate_file, tls.ca_key_file);
    if (!ca) return ca.error().wrap("--tls-ca-cert/--tls-ca-key");
    pem = ca->certificate_pem();
  } else {
    std::string dir = home + "/tls";
    auto ca = tls::CertificateAuthority::load_or_create(dir);
    if (!ca) return ca.error().wrap("the TLS interception CA");
    tls.ca_certificate_file = tls::ca_certificate_path(dir);
    tls.ca_key_file = tls::ca_key_path(dir);
    pem = ca->certificate_pem();
  }
  if (!tls.upstream_ca_file.empty()) {
    MOAT_ASSIGN_OR_RETURN(tls.upstream_ca_file, absolute(tls.upstream_ca_file, "--tls-upstream-ca"));
    auto roots = tls::read_pem_certificates(tls.upstream_ca_file);
    if (!roots) return roots.error().wrap("--tls-upstream-ca");
  }
  return pem;
}

Result<TlsTrust> tls_trust_for(const std::string& lower_erofs, const std::string& ca_pem) {
  MOAT_ASSIGN_OR_RETURN(auto lower, image::ErofsReader::open(lower_erofs));
  TlsTrust trust;
  std::vector<std::string> patched;
  std::string first_bundle;
  for (const char* bundle : kBundles) {
    MOAT_ASSIGN_OR_RETURN(auto target, resolve_in_lower(lower, bundle));
    if (!target) continue;
    if (first_bundle.empty()) first_bundle = bundle;
    if (std::find(patched.begin(), patched.end(), *target) != patched.end()) continue;
    MOAT_ASSIGN_OR_RETURN(auto text, read_lower_file(lower, *target));
    if (!text.empty() && text.back() != '\n') text += '\n';
    text += ca_pem;
    trust.patches.push_back(write_patch(*target, std::move(text)));
    patched.push_back(*target);
  }
  trust.patches.push_back(write_patch(kGuestCaFile, ca_pem));
  std::string file = first_bundle.empty() ? kGuestCaFile : first_bundle;
  for (const char* var : {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"})
    trust.env.push_back(std::string(var) + "=" + file);
  trust.env.push_back(std::string("NODE_EXTRA_CA_CERTS=") + kGuestCaFile);
  return trust;
}

}  // namespace moat::sandbox
