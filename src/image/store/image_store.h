// ImageStore: the local image store under $MOAT_HOME, tying together
//
//   blobs/sha256/<hex>          verified blobs (BlobStore)
//   moat.db                     refs, manifests, layers (ImageDb)
//   images/<manifest-hex>.erofs the read-only root built from a manifest
//
// and the operations include/moat/images.h needs besides pulling
// (image_pull.h): resolve, list, tag, remove, prune, and (re)building a root.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "image/oci/blob_store.h"
#include "image/store/image_db.h"
#include "image/oci/manifest.h"
#include "image/oci/reference.h"
#include "util/result.h"

namespace moat::image {

struct ImageSummary {
  std::string ref;
  std::string digest;
  std::string manifest_digest;
  std::string platform;
  std::uint64_t size = 0;  // compressed: what the pull downloaded
};

struct PruneReport {
  std::size_t images = 0;       // manifests removed
  std::size_t blobs = 0;        // blobs/sha256 files removed
  std::size_t roots = 0;        // images/<hex>.erofs removed
  std::size_t temp_files = 0;   // incoming and temp outputs removed
  std::uint64_t bytes = 0;      // apparent size of everything removed
};

class ImageStore {
 public:
  // Opens (and creates) the store in `home` ($MOAT_HOME).
  static Result<std::unique_ptr<ImageStore>> open(const std::string& home);

  const BlobStore& blobs() const { return blobs_; }
  ImageDb& db() { return *db_; }
  const std::string& home() const { return home_; }
  std::string images_dir() const { return home_ + "/images"; }
  std::string erofs_path(const std::string& manifest_digest) const;

  // Builds the EROFS root of `image` from its stored blobs unless it exists.
  // Returns true if it built one. The bytes depend only on the layers, so a
  // rebuild (or a concurrent build by another process) gives the same file.
  Result<bool> ensure_root(const ImageRecord& image);

  // Reads and parses the config blob of a recorded image.
  Result<ImageConfig> config_of(const ImageRecord& image) const;

  // Finds the image `image` names: a digest ("sha256:<hex>": the ref that
  // resolved to it, else the manifest), an image id (12 to 64 hex digits
  // starting exactly one stored digest), or a reference ("busybox" means
  // docker.io/library/busybox:latest). The one resolver every command and
  // include/moat/images.h use.
  Result<std::pair<RefRecord, ImageRecord>> resolve(const std::string& image);

  // Records `target` (name[:tag]) as another name for the image `source`
  // names. `source` is a ref or a digest the store knows (a ref's digest or
  // a recorded manifest). Returns the ref written.
  Result<RefRecord> tag(const std::string& source, const std::string& target);

  Result<std::vector<ImageSummary>> list();
  // Removes the ref; an image no other ref uses loses its rows, its root
  // and the blobs only it used. Holds the store lock exclusively
  // (store_lock.h), so it never races a pull's unrecorded blobs.
  Status remove(const std::string& ref_text);

  // Garbage collection under the exclusive store lock: manifests no ref
  // leads to, blobs no row needs, roots without a manifest row, temp outputs
  // of interrupted builds in images/, and files in blobs/incoming not
  // modified for `stale_after` (partial downloads stay resumable that long).
  Result<PruneReport> prune(std::chrono::seconds stale_after = std::chrono::hours(1));

 private:
  ImageStore(std::string home, BlobStore blobs, std::unique_ptr<ImageDb> db)
      : home_(std::move(home)), blobs_(std::move(blobs)), db_(std::move(db)) {}
  Result<RefRecord> resolve_digest(const std::string& digest);
  Result<std::optional<RefRecord>> resolve_id(const std::string& id);

  std::string home_;
  BlobStore blobs_;
  std::unique_ptr<ImageDb> db_;
};

// The key a reference is stored under: its canonical text.
std::string ref_key(const Reference& ref);

// The refs key for text a user typed: a bare "sha256:<hex>" (the name of an
// image loaded from an archive that named none) as it is, anything else
// parsed as a reference.
Result<std::string> ref_key_for(const std::string& text);

}  // namespace moat::image
