// The metadata files of image archives, parsed without touching the store:
// Docker's manifest.json, an OCI layout's index.json and oci-layout, the
// names images carry in them, archive entry paths, and the OCI manifest
// moat records for a docker-archive image that comes without one.
//
// Everything here reads untrusted archive content (and is fuzzed by
// fuzz/fuzz_image_archive.cpp): sizes, counts and nesting are bounded, every
// field is type-checked, and paths are cleaned lexically and never allowed
// to leave the archive's root.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "image/oci/manifest.h"
#include "util/result.h"

namespace moat::image {

inline constexpr std::size_t kMaxArchiveMetadataSize = 4 << 20;  // manifest.json, index.json
inline constexpr std::size_t kMaxArchiveImages = 1000;
inline constexpr std::size_t kMaxRepoTags = 1000;

// Annotation keys that name an image in an index.json entry.
inline constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";
inline constexpr std::string_view kContainerdNameAnnotation = "io.containerd.image.name";

// One entry of a docker-archive manifest.json. Paths are as written (relative
// to the archive root, not yet cleaned).
struct DockerArchiveImage {
  std::string config;
  std::vector<std::string> repo_tags;
  std::vector<std::string> layers;
};

Result<std::vector<DockerArchiveImage>> parse_docker_archive_manifest(std::string_view body);

// index.json of an OCI layout (or of a docker-archive in its OCI-layout
// form): the descriptors it lists, at most kMaxArchiveImages.
Result<ImageIndex> parse_layout_index(std::string_view body);

// oci-layout must be {"imageLayoutVersion": "1.0.0"}.
Status check_oci_layout_file(std::string_view body);

// The full references an index.json entry names, canonical
// ("registry/repo:tag"): io.containerd.image.name, and
// org.opencontainers.image.ref.name when it is a full reference. A ref.name
// that is only a tag ("latest", as skopeo and Docker write it) names no
// repository, so it gives no name on its own.
std::vector<std::string> names_from_annotations(const Descriptor& d);

// A RepoTags entry ("busybox:latest", "registry:5000/x:1") in canonical form.
Result<std::string> name_from_repo_tag(std::string_view tag);

// Cleans an archive entry name: drops "./" and empty components, refuses
// absolute paths, "..", NUL, more than 8 components or 1024 bytes. The
// result is relative to the archive root, without a trailing slash ("" for
// the root itself).
Result<std::string> clean_archive_path(std::string_view path);

// Where a symlink at `link_path` pointing to `target` leads, relative to the
// archive root; an error if it would leave the root or is absolute.
Result<std::string> resolve_archive_link(std::string_view link_path, std::string_view target);

// "blobs/sha256/<64 hex>" -> "sha256:<hex>"; "" for any other path.
std::string digest_from_blob_path(std::string_view clean_path);
std::string blob_path_for(std::string_view digest);

// The OCI image manifest moat records for a docker-archive image that has
// only a config and layer tars: compact JSON in key order (nlohmann's
// object order), so the same archive always gives the same digest.
struct ArchiveLayer {
  std::string digest;
  std::uint64_t size = 0;
  std::string media_type;
};
std::string make_archive_manifest(const std::string& config_digest, std::uint64_t config_size,
                                  const std::vector<ArchiveLayer>& layers);

// The layer media type for a stored layer file, from its first bytes:
// gzip and zstd magic numbers, else an uncompressed tar.
std::string sniff_layer_media_type(std::string_view head);

}  // namespace moat::image
