// RegistryClient: the pull side of the OCI distribution spec for one
// repository.
//
//   GET /v2/<repo>/manifests/<tag|digest>   Accept: OCI index + manifest,
//                                           Docker list + schema2
//   GET /v2/<repo>/blobs/<digest>           into the BlobStore, verified
//
// Authentication: requests go out anonymously (or with a cached token);
// a 401 with a Bearer challenge fetches a token from the challenge's realm
// (service, scope; Basic credentials from Docker's config if there are any)
// and retries once; a Basic challenge uses the credentials directly.
// Redirects are followed by hand, at most 5, and Authorization is sent only
// to the registry's own origin, never to a storage host it redirects to.
// Transport failures, 5xx and 429 are retried with exponential backoff (a
// bounded number of times), 4xx never. Blob downloads resume with a Range
// request from the bytes already kept in the store's partial file.
//
// Thread-safe: blobs may be fetched from several threads at once; each call
// uses its own connection and the token cache is shared under a lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "image/oci/blob_store.h"
#include "image/registry/http_client.h"
#include "image/oci/manifest.h"
#include "image/oci/reference.h"
#include "image/registry/registry_auth.h"
#include "util/result.h"

namespace moat::image {

struct RegistryOptions {
  bool insecure = false;  // plain http
  int max_attempts = 5;   // per request, counting the first
  int initial_backoff_ms = 250;
  long stall_timeout_s = 60;
  // Explicit credentials; when unset, Docker's config file is consulted.
  std::optional<Credentials> credentials;
  std::string docker_config_path;  // "" = default location
};

struct FetchedManifest {
  std::string body;
  std::string media_type;  // from Content-Type
  std::string digest;      // sha256 of body, checked against what was asked for
};

class RegistryClient {
 public:
  static Result<std::unique_ptr<RegistryClient>> create(const Reference& ref,
                                                        const RegistryOptions& options);

  // `tag_or_digest`: a tag, or a digest that the body must then hash to.
  Result<FetchedManifest> get_manifest(const std::string& tag_or_digest);

  // Downloads `desc` into `store` unless it is already there. `progress`
  // (may be empty) gets the byte count of each chunk received.
  Status fetch_blob(const Descriptor& desc, const BlobStore& store,
                    const std::function<void(std::uint64_t)>& progress);

  // Total bytes received, for tests and summaries.
  std::uint64_t bytes_received() const { return bytes_received_; }

 private:
  RegistryClient(Reference ref, RegistryOptions options)
      : ref_(std::move(ref)), options_(std::move(options)) {}

  std::string base_url() const;
  // One logical request: auth, redirects. The response may be any status.
  Result<HttpResponse> send(HttpClient& http, HttpRequest request);
  // Acts on a 401's challenge. False: no challenge we can answer (the 401
  // stands); an error: the token server refused or misbehaved.
  Result<bool> authenticate(HttpClient& http, const HttpResponse& unauthorized);
  Result<std::string> fetch_token(HttpClient& http, const AuthChallenge& ch);
  Error http_error(const HttpResponse& resp, const std::string& what) const;
  Status fetch_blob_once(HttpClient& http, const Descriptor& desc, BlobWriter& writer,
                         const std::function<void(std::uint64_t)>& progress);

  Reference ref_;
  RegistryOptions options_;
  std::optional<Credentials> credentials_;
  std::mutex auth_mu_;
  std::string auth_header_;  // "Authorization: ..." or empty
  HttpClient manifest_http_;
  std::atomic<std::uint64_t> bytes_received_{0};
};

// Sleeps before attempt `attempt` (1-based retries): initial * 2^(n-1),
// capped at 8 s, with jitter.
void backoff_sleep(int initial_ms, int attempt);

}  // namespace moat::image
