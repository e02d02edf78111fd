// Pulling an image: registry -> verified blobs -> metadata -> EROFS root.
//
//   1. GET the manifest for the tag (or digest); if it is an index, pick the
//      platform's manifest (select_platform) and GET that by digest.
//   2. Store the manifest(s) as blobs; download the config (bounded) and
//      check it describes as many layers as the manifest lists.
//   3. Download the layers in parallel into the blob store (each verified
//      before it is visible; retries, Range resume).
//   4. Build images/<manifest-hex>.erofs, checking every layer's diff_id
//      against the config (skipped when the image exists already).
//   5. Record manifest, layers and the ref in the database, in one
//      transaction, so the ref only ever points at a complete image.
//
// Credentials: PullOptions::registry.credentials if set, else
// $MOAT_HOME/auth.json (`moat registry login`), else Docker's config file.
//
// The whole pull holds the store lock shared (store_lock.h). A pull that
// moves a tag to a new digest leaves the old image without a ref; `moat
// image prune` collects it.
#pragma once

#include <functional>
#include <string>

#include "moat/images.h"

#include "image/store/image_store.h"
#include "image/oci/manifest.h"
#include "image/oci/reference.h"
#include "image/registry/registry_client.h"
#include "util/result.h"

namespace moat::image {

inline constexpr std::uint64_t kMaxLayerSize = 64ull << 30;

using ProgressFn = std::function<void(const moat::PullProgress&)>;

struct PullOptions {
  Platform platform = default_platform();
  // The user asked for `platform` explicitly: a single-platform image for
  // another OS or architecture is then an error rather than taken as it is.
  bool require_platform = false;
  RegistryOptions registry;
  int parallel_downloads = 3;
  ProgressFn on_progress;  // reports per layer; may be empty
};

struct PullResult {
  std::string ref;              // canonical reference stored
  std::string digest;           // what the tag resolved to (index or manifest)
  std::string manifest_digest;  // the platform manifest
  std::string erofs_path;
  bool built_root = false;      // false: the root was cached
  std::uint64_t bytes_downloaded = 0;
};

Result<PullResult> pull_image(ImageStore& store, const Reference& ref, const PullOptions& options);

}  // namespace moat::image
