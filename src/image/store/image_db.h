// ImageDb: image metadata in SQLite ($MOAT_HOME/moat.db).
//
//   refs       name ("registry/repo:tag" or "registry/repo@digest") -> the
//              digest the name resolved to (an index or a manifest) and the
//              platform manifest chosen from it
//   manifests  digest, media type, config digest, platform, manifest size
//   layers     (manifest digest, index) -> blob digest, diff_id, size
//   image_users  (manifest digest, user): sandboxes using an image
//
// The database runs in WAL mode with a busy timeout, so several moat
// processes can read and write it at once; every multi-row change is one
// transaction. Blobs themselves live in the BlobStore; this only says which
// blobs make up which image.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/sqlite.h"
#include "util/result.h"

struct sqlite3;

namespace moat::image {

struct LayerRecord {
  std::string blob_digest;
  std::string media_type;
  std::string diff_id;
  std::uint64_t size = 0;
};

struct ImageRecord {
  std::string manifest_digest;
  std::string media_type;
  std::string config_digest;
  std::string platform;  // "linux/amd64"
  std::uint64_t manifest_size = 0;
  std::uint64_t config_size = 0;
  std::vector<LayerRecord> layers;

  // Manifest + config + compressed layers: what the pull stored.
  std::uint64_t total_size() const;
};

struct RefRecord {
  std::string name;
  std::string digest;           // what the name resolved to (index or manifest)
  std::string manifest_digest;  // the platform manifest
  std::int64_t updated = 0;     // unix seconds
};

class ImageDb {
 public:
  static Result<std::unique_ptr<ImageDb>> open(const std::string& path);
  static std::string default_path(const std::string& moat_home) { return moat_home + "/moat.db"; }
  ~ImageDb();
  ImageDb(const ImageDb&) = delete;
  ImageDb& operator=(const ImageDb&) = delete;

  // Records an image and points `ref` at it, atomically.
  Status put_image(const ImageRecord& image, const RefRecord& ref);

  // Points `ref` at an image that is already recorded (`moat image tag`).
  // Fails if the manifest has no rows: a ref must never name a missing image.
  Status add_ref(const RefRecord& ref);

  Result<std::optional<RefRecord>> get_ref(const std::string& name);
  Result<std::vector<RefRecord>> list_refs();
  Result<std::optional<ImageRecord>> get_image(const std::string& manifest_digest);

  // Removes `name`; if no other ref uses its manifest, the manifest's rows
  // too. Returns the blob digests no image references any more (for the
  // caller to delete), or an error if the ref does not exist.
  Result<std::vector<std::string>> remove_ref(const std::string& name, bool* image_removed);

  // True if a ref, manifest or layer row names `digest` (as index, manifest,
  // config or layer).
  Result<bool> blob_in_use(const std::string& digest) { return blob_referenced(digest); }

  // Garbage collection (`moat image prune`): deletes the manifests no ref
  // leads to (a tag moved by a later pull or load, or a failed rm) with
  // their layer rows, in one transaction; returns their digests.
  Result<std::vector<std::string>> remove_unreferenced_manifests();

  // Users (a sandbox: "sandbox:<id>") that keep an image whatever its refs:
  // `image rm` only untags it and `prune` skips it while one remains.
  Status add_user(const std::string& manifest_digest, const std::string& user);
  Status remove_user(const std::string& user);
  // Every digest some row needs as a blob, and every recorded manifest.
  Result<std::vector<std::string>> blobs_in_use();
  Result<std::vector<std::string>> manifest_digests();

 private:
  explicit ImageDb(std::unique_ptr<store::SqliteDb> db);
  Status exec(const char* sql);
  Result<bool> blob_referenced(const std::string& digest);
  Status write_ref(const RefRecord& ref);

  std::unique_ptr<store::SqliteDb> owner_;
  sqlite3* db_;  // owner_'s handle, for the statements
};

}  // namespace moat::image
