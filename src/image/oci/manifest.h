// OCI and Docker image metadata: image index / manifest list, image manifest,
// image config, and platform selection.
//
// Everything here parses untrusted registry or archive content: sizes are
// bounded before parsing, JSON nesting is checked before the recursive parser
// sees it, every field is type-checked, and anything that is not a runnable
// container image (artifacts, encrypted or unknown layer types) is rejected
// with an error that says so.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace moat::image {

namespace media_type {
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
}  // namespace media_type

inline constexpr std::size_t kMaxManifestSize = 4 << 20;  // what containerd accepts
inline constexpr std::size_t kMaxConfigSize = 8 << 20;
inline constexpr std::size_t kMaxLayers = 1000;
inline constexpr std::size_t kMaxIndexEntries = 10000;

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string os_version;

  // "linux/amd64", "linux/arm64/v8"
  std::string to_string() const;
  bool operator==(const Platform&) const = default;
};

// Parses "os/arch[/variant]" and normalises the architecture names the way
// Docker does (x86_64 -> amd64, aarch64 -> arm64, arm64 defaults to v8).
Result<Platform> parse_platform(std::string_view text);
Platform default_platform();  // linux/amd64

struct Descriptor {
  std::string media_type;
  std::string digest;
  std::uint64_t size = 0;
  std::optional<Platform> platform;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> urls;
};

struct ImageIndex {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

enum class LayerCompression { kNone, kGzip, kZstd };

struct LayerDescriptor {
  Descriptor descriptor;
  LayerCompression compression = LayerCompression::kNone;
};

struct ImageManifest {
  std::string media_type;
  Descriptor config;
  std::vector<LayerDescriptor> layers;
};

struct ImageConfig {
  Platform platform;
  std::string user;
  std::string working_dir;
  std::vector<std::string> env;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  std::vector<std::string> diff_ids;
};

enum class ManifestKind { kIndex, kManifest };

// Tells an index from a manifest by the Content-Type a registry sent (may be
// empty) and the body's own mediaType; they must agree when both are present.
Result<ManifestKind> detect_manifest_kind(std::string_view body, std::string_view content_type);

Result<ImageIndex> parse_index(std::string_view body, std::string_view content_type = {});
Result<ImageManifest> parse_manifest(std::string_view body, std::string_view content_type = {});
Result<ImageConfig> parse_config(std::string_view body);

// The first manifest in the index for `want`, skipping attestation manifests
// and entries of unknown media types. A wanted variant must match; without
// one, arm64 means v8 and other architectures take the first entry.
Result<Descriptor> select_platform(const ImageIndex& index, const Platform& want);

// The config must describe as many layers as the manifest lists.
Status check_layer_count(const ImageManifest& manifest, const ImageConfig& config);

Result<LayerCompression> layer_compression(std::string_view media_type);

}  // namespace moat::image
