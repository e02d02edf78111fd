// `moat image load`: image archives into the store.
//
// Accepted, plain or compressed (whatever libarchive detects):
//   - docker-archive, old form (docker save before v25, skopeo
//     docker-archive:): manifest.json + <config>.json + <id>/layer.tar or
//     <hex>.tar, symlinks between duplicate layers allowed;
//   - docker-archive, OCI-layout form (docker save >= 25): index.json +
//     oci-layout + blobs/sha256/ + manifest.json;
//   - OCI image layout tar (skopeo oci-archive:, moat image save --format oci).
//
// The tar is read once, as a stream (stdin works): every regular file goes
// into the BlobStore, verified before it is visible (blobs/sha256/<hex> must
// hash to <hex>; other files are hashed while they are spooled, then stored
// under that digest). Metadata files are kept in memory (4 MiB each). After
// the stream ends, index.json (if any) and then manifest.json entries that
// index.json did not cover are turned into images; see image-store.md.
//
// Concurrency and failure: the load holds the store lock shared (like a
// pull). Nothing is recorded until every image of the archive has its
// blobs and root; on any error, the blobs and roots this load created and
// no image uses are deleted again under the exclusive lock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image/store/image_store.h"
#include "image/oci/manifest.h"
#include "util/result.h"

namespace moat::image {

struct LoadOptions {
  Platform platform = default_platform();  // for an index among the archive's entries
  std::uint64_t max_entries = 100000;
  std::uint64_t max_total_bytes = 256ull << 30;  // decompressed archive
  std::uint64_t max_blob_size = 64ull << 30;
};

struct LoadedImage {
  std::vector<std::string> names;  // refs recorded; the digest itself if the archive named none
  std::string digest;              // what the names resolve to (index or manifest)
  std::string manifest_digest;
  std::string erofs_path;
  bool built_root = false;
};

// Reads an archive from `fd` (a file or a pipe) into `store`.
Result<std::vector<LoadedImage>> load_image_archive(ImageStore& store, int fd,
                                                    const LoadOptions& options = {});

}  // namespace moat::image
