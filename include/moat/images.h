// moat's image API: the local store of OCI images under $MOAT_HOME (blobs
// verified by digest, one read-only EROFS root per image) and the registries
// they come from.
//
//   moat::PullOptions opts;
//   opts.on_progress = [](const moat::PullProgress& p) { ... p.done, p.total ... };
//   auto pulled = moat::pull_image("127.0.0.1:5000/app:1", opts);
//   auto details = moat::inspect_image(pulled->digest);
//
// Naming an image. Every function that takes an `image` accepts, in this
// order of precedence:
//   - a digest, "sha256:<64 hex>": the reference that resolved to it, else
//     the image whose manifest has it;
//   - an image id: 12 to 64 lowercase hex digits that start the digest of
//     exactly one stored image (as `moat image ls` shows them);
//   - a reference, "name[:tag][@digest]" ("busybox" means
//     docker.io/library/busybox:latest).
// image_root_file() also takes the path of an EROFS file.
//
// Errors carry an errno-style code: ENOENT for an image the store does not
// have, EINVAL for text that names none, EEXIST, EBUSY, EIO as usual.
// Nothing here throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "moat/result.h"

namespace moat {

// ---- Pulling ----

// One report of a pull's progress. Reports come from the download threads,
// one call at a time, for each chunk received and when a layer completes.
struct PullProgress {
  std::size_t layer = 0;         // 1-based index of the layer this report is about
  std::size_t layers = 0;        // layers in the image
  std::string digest;            // that layer's digest
  std::uint64_t layer_done = 0;  // its bytes received so far
  std::uint64_t layer_total = 0; // its size
  bool layer_complete = false;   // verified and stored
  std::uint64_t done = 0;        // bytes received, all layers of this pull
  std::uint64_t total = 0;       // bytes this pull downloads (layers not stored yet)
  std::size_t layers_done = 0;   // layers complete
};

struct PullOptions {
  // "os/arch[/variant]". Empty: linux/amd64 from an index, and a
  // single-platform image is taken whatever its platform.
  std::string platform;
  bool insecure_registry = false;  // plain HTTP
  int parallel_downloads = 3;
  std::function<void(const PullProgress&)> on_progress;
};

struct PulledImage {
  std::string ref;              // the canonical reference stored
  std::string digest;           // what it resolved to (index or manifest)
  std::string manifest_digest;  // the platform manifest
  std::string root_path;        // the EROFS root
  bool built_root = false;      // false: the root was already there
  std::uint64_t bytes_downloaded = 0;
};

// Pulls `ref` (credentials: $MOAT_HOME/auth.json, then Docker's config) and
// builds its root. Pulling an image the store has downloads nothing.
Result<PulledImage> pull_image(const std::string& ref, const PullOptions& options = {});

// ---- The store ----

struct ImageSummary {
  std::string ref;
  std::string digest;
  std::string manifest_digest;
  std::string platform;     // "linux/amd64"
  std::uint64_t size = 0;   // manifest + config + compressed layers
};

struct ImageLayer {
  std::string digest;  // of the blob as stored (compressed)
  std::string media_type;
  std::string diff_id;  // of the uncompressed tar
  std::uint64_t size = 0;
};

struct ImageDetails {
  std::string ref;
  std::string digest;
  std::string manifest_digest;
  std::string media_type;
  std::string platform;
  std::uint64_t size = 0;
  std::string config_digest;
  // From the image's config.
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
  std::map<std::string, std::string> labels;
  std::vector<ImageLayer> layers;
  std::string root_path;  // the EROFS root; empty when it is not built
};

Result<std::vector<ImageSummary>> list_images();
Result<ImageDetails> inspect_image(const std::string& image);

// Removes a reference (a name, or the digest an image loaded without a name
// is stored under); an image no reference leads to any more loses its root
// and the blobs only it used.
Status remove_image(const std::string& ref);

struct TaggedImage {
  std::string ref;     // the new reference
  std::string digest;  // what it resolves to
};
// Gives the image `source` names another name, `target` ("name[:tag]").
Result<TaggedImage> tag_image(const std::string& source, const std::string& target);

// The EROFS root of an image, built if missing: `image` as above, or the
// path of an EROFS file (an existing file wins over a reference).
Result<std::string> image_root_file(const std::string& image);

struct ImageCheck {
  std::string ref;
  std::string digest;
  std::vector<std::string> problems;  // empty: sound
  bool ok() const { return problems.empty(); }
};
// Re-verifies blobs and roots of `images` (every image when empty).
Result<std::vector<ImageCheck>> check_images(const std::vector<std::string>& images);

struct PruneReport {
  std::size_t images = 0;      // manifests removed
  std::size_t blobs = 0;
  std::size_t roots = 0;
  std::size_t temp_files = 0;
  std::uint64_t bytes = 0;     // apparent size of everything removed
};
// Removes images no reference leads to, unused blobs and roots, and
// temporary files of interrupted pulls and builds.
Result<PruneReport> prune_images();

// ---- Archives ----

enum class ArchiveFormat { kOci, kDocker };
// "oci" or "docker".
Result<ArchiveFormat> parse_archive_format(const std::string& text);

struct LoadedImage {
  std::vector<std::string> names;  // references recorded; the digest when the archive named none
  std::string digest;
  std::string manifest_digest;
  std::string root_path;
  bool built_root = false;
};
// Reads a docker-archive or OCI layout tar (plain or compressed) from `fd`.
Result<std::vector<LoadedImage>> load_images(int fd);
// Writes `images` as one archive to `fd`.
Status save_images(const std::vector<std::string>& images, ArchiveFormat format, int fd);
// The same into `path`, which appears only once the archive is complete.
Status save_images_to_file(const std::vector<std::string>& images, ArchiveFormat format, const std::string& path);

// ---- Registries ----

// The registry part of what a user typed ("docker.io", "host:port").
Result<std::string> registry_name(const std::string& text);
// Checks the credentials against the registry, then stores them in
// $MOAT_HOME/auth.json (mode 0600). Returns the registry's name.
Result<std::string> registry_login(const std::string& registry, const std::string& username,
                                   const std::string& password, bool insecure = false);
// Forgets stored credentials (ENOENT: there were none). Returns the name.
Result<std::string> registry_logout(const std::string& registry);

}  // namespace moat
