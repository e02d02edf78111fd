#include "image/oci/manifest.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cerrno>

#include "image/oci/digest.h"
#include "image/oci/json_guard.h"

namespace moat::image {
namespace {

using json = nlohmann::json;

constexpr std::string_view kAttestationAnnotation = "vnd.docker.reference.type";
constexpr std::string_view kAttestationValue = "attestation-manifest";

Error invalid(const std::string& what) { return make_error(what, EINVAL); }

Result<json> parse_object(std::string_view text, std::size_t max_size, const char* what) {
  if (text.size() > max_size) {
    return make_error(std::string(what) + " larger than " + std::to_string(max_size) + " bytes",
                      EFBIG);
  }
  MOAT_TRY(check_json_nesting(text));
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return invalid(std::string(what) + " is not valid JSON");
  if (!doc.is_object()) return invalid(std::string(what) + " is not a JSON object");
  return doc;
}

const json* member(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

Result<std::string> get_string(const json& obj, std::string_view key, bool required) {
  const json* v = member(obj, key);
  if (!v) {
    if (required) return invalid("missing field '" + std::string(key) + "'");
    return std::string();
  }
  if (!v->is_string()) return invalid("field '" + std::string(key) + "' is not a string");
  return v->get<std::string>();
}

Result<std::vector<std::string>> get_string_array(const json& obj, std::string_view key,
                                                  std::size_t max_items) {
  std::vector<std::string> out;
  const json* v = member(obj, key);
  if (!v) return out;
  if (!v->is_array()) return invalid("field '" + std::string(key) + "' is not an array");
  if (v->size() > max_items) return invalid("field '" + std::string(key) + "' has too many items");
  for (const json& item : *v) {
    if (!item.is_string()) return invalid("field '" + std::string(key) + "' holds a non-string");
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<std::map<std::string, std::string>> get_string_map(const json& obj, std::string_view key) {
  std::map<std::string, std::string> out;
  const json* v = member(obj, key);
  if (!v) return out;
  if (!v->is_object()) return invalid("field '" + std::string(key) + "' is not an object");
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it->is_string()) return invalid("field '" + std::string(key) + "' holds a non-string");
    out[it.key()] = it->get<std::string>();
  }
  return out;
}

Status check_schema_version(const json& doc) {
  const json* v = member(doc, "schemaVersion");
  if (!v || !v->is_number_integer() || v->get<std::int64_t>() != 2) {
    return invalid("schemaVersion must be 2");
  }
  return ok_status();
}

std::string strip_params(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  return std::string(t);
}

bool is_index_type(std::string_view t) {
  return t == media_type::kOciIndex || t == media_type::kDockerList;
}
bool is_manifest_type(std::string_view t) {
  return t == media_type::kOciManifest || t == media_type::kDockerManifest;
}

std::string normalize_arch(std::string arch, std::string& variant) {
  if (arch == "x86_64" || arch == "x86-64") return "amd64";
  if (arch == "i386") return "386";
  if (arch == "aarch64") arch = "arm64";
  if (arch == "armhf") return variant = "v7", "arm";
  if (arch == "armel") return variant = "v6", "arm";
  if (arch == "arm64" && variant == "8") variant = "v8";
  return arch;
}

Result<Platform> parse_platform_object(const json& v) {
  if (!v.is_object()) return invalid("platform is not an object");
  Platform p;
  MOAT_ASSIGN_OR_RETURN(p.os, get_string(v, "os", true));
  MOAT_ASSIGN_OR_RETURN(p.architecture, get_string(v, "architecture", true));
  MOAT_ASSIGN_OR_RETURN(p.variant, get_string(v, "variant", false));
  MOAT_ASSIGN_OR_RETURN(p.os_version, get_string(v, "os.version", false));
  p.architecture = normalize_arch(p.architecture, p.variant);
  return p;
}

Result<Descriptor> parse_descriptor(const json& v) {
  if (!v.is_object()) return invalid("descriptor is not an object");
  Descriptor d;
  MOAT_ASSIGN_OR_RETURN(d.media_type, get_string(v, "mediaType", true));
  MOAT_ASSIGN_OR_RETURN(d.digest, get_string(v, "digest", true));
  MOAT_TRY(validate_digest(d.digest));
  const json* size = member(v, "size");
  if (!size || !size->is_number_integer() || size->get<std::int64_t>() < 0) {
    return invalid("descriptor size must be a non-negative integer");
  }
  d.size = size->get<std::uint64_t>();
  if (const json* p = member(v, "platform")) {
    MOAT_ASSIGN_OR_RETURN(d.platform, parse_platform_object(*p));
  }
  MOAT_ASSIGN_OR_RETURN(d.annotations, get_string_map(v, "annotations"));
  MOAT_ASSIGN_OR_RETURN(d.urls, get_string_array(v, "urls", 64));
  return d;
}

// The body's mediaType and the Content-Type must both be of the wanted kind.
Result<std::string> check_media_type(const json& doc, std::string_view content_type,
                                     bool (*accept)(std::string_view), const char* what) {
  MOAT_ASSIGN_OR_RETURN(std::string body_type, get_string(doc, "mediaType", false));
  std::string header_type = strip_params(content_type);
  if (!body_type.empty() && !accept(body_type)) {
    return invalid(std::string("not an ") + what + ": mediaType " + body_type);
  }
  if (!header_type.empty() && !accept(header_type)) {
    return invalid(std::string("not an ") + what + ": Content-Type " + header_type);
  }
  if (!body_type.empty() && !header_type.empty() && body_type != header_type) {
    return invalid("mediaType " + body_type + " does not match Content-Type " + header_type);
  }
  return body_type.empty() ? header_type : body_type;
}

bool platform_matches(const Platform& have, const Platform& want) {
  if (have.os != want.os || have.architecture != want.architecture) return false;
  std::string have_variant = have.variant;
  std::string want_variant = want.variant;
  if (want.architecture == "arm64") {
    if (have_variant.empty()) have_variant = "v8";
    if (want_variant.empty()) want_variant = "v8";
  }
  return want_variant.empty() || have_variant == want_variant;
}

bool is_attestation(const Descriptor& d) {
  auto it = d.annotations.find(std::string(kAttestationAnnotation));
  return it != d.annotations.end() && it->second == kAttestationValue;
}

}  // namespace

std::string Platform::to_string() const {
  return os + "/" + architecture + (variant.empty() ? "" : "/" + variant);
}

Platform default_platform() { return Platform{"linux", "amd64", "", ""}; }

Result<Platform> parse_platform(std::string_view text) {
  Platform p;
  std::vector<std::string> parts;
  std::size_t pos = 0;
  while (true) {
    std::size_t slash = text.find('/', pos);
    parts.emplace_back(text.substr(pos, slash == std::string_view::npos ? slash : slash - pos));
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) {
    return invalid("platform must be os/arch[/variant], got '" + std::string(text) + "'");
  }
  for (std::string& part : parts) {
    if (part.empty()) return invalid("empty component in platform '" + std::string(text) + "'");
    for (char& c : part) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  p.os = parts[0];
  p.variant = parts.size() == 3 ? parts[2] : "";
  p.architecture = normalize_arch(parts[1], p.variant);
  return p;
}

Result<ManifestKind> detect_manifest_kind(std::string_view body, std::string_view content_type) {
  std::string header_type = strip_params(content_type);
  MOAT_ASSIGN_OR_RETURN(json doc, parse_object(body, kMaxManifestSize, "manifest"));
  MOAT_ASSIGN_OR_RETURN(std::string body_type, get_string(doc, "mediaType", false));
  std::string type = body_type.empty() ? header_type : body_type;
  if (!body_type.empty() && !header_type.empty() && body_type != header_type) {
    return invalid("mediaType " + body_type + " does not match Content-Type " + header_type);
  }
  if (is_index_type(type)) return ManifestKind::kIndex;
  if (is_manifest_type(type)) return ManifestKind::kManifest;
  if (!type.empty() && type != "application/json") {
    return make_error("unsupported manifest media type " + type, ENOTSUP);
  }
  // Untyped bodies (OCI layouts may omit mediaType): go by structure.
  if (doc.contains("manifests")) return ManifestKind::kIndex;
  if (doc.contains("layers") || doc.contains("config")) return ManifestKind::kManifest;
  return invalid("neither an image index nor an image manifest");
}

Result<ImageIndex> parse_index(std::string_view body, std::string_view content_type) {
  MOAT_ASSIGN_OR_RETURN(json doc, parse_object(body, kMaxManifestSize, "image index"));
  MOAT_TRY(check_schema_version(doc));
  ImageIndex index;
  MOAT_ASSIGN_OR_RETURN(index.media_type,
                        check_media_type(doc, content_type, is_index_type, "image index"));
  const json* manifests = member(doc, "manifests");
  if (!manifests || !manifests->is_array()) return invalid("image index without a manifests array");
  if (manifests->size() > kMaxIndexEntries) return invalid("image index has too many entries");
  for (const json& m : *manifests) {
    auto d = parse_descriptor(m);
    if (!d.ok()) return d.error().wrap("image index entry");
    index.manifests.push_back(std::move(*d));
  }
  return index;
}

Result<LayerCompression> layer_compression(std::string_view t) {
  static constexpr std::string_view kPlain[] = {
      "application/vnd.oci.image.layer.v1.tar",
      "application/vnd.oci.image.layer.nondistributable.v1.tar",
      "application/vnd.docker.image.rootfs.diff.tar",
  };
  static constexpr std::string_view kGzip[] = {
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      "application/vnd.docker.image.rootfs.diff.tar.gzip",
      "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  };
  static constexpr std::string_view kZstd[] = {
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
      "application/vnd.docker.image.rootfs.diff.tar.zstd",
  };
  for (auto m : kPlain) if (t == m) return LayerCompression::kNone;
  for (auto m : kGzip) if (t == m) return LayerCompression::kGzip;
  for (auto m : kZstd) if (t == m) return LayerCompression::kZstd;
  return make_error("unsupported layer media type '" + std::string(t) + "'", ENOTSUP);
}

Result<ImageManifest> parse_manifest(std::string_view body, std::string_view content_type) {
  MOAT_ASSIGN_OR_RETURN(json doc, parse_object(body, kMaxManifestSize, "image manifest"));
  MOAT_TRY(check_schema_version(doc));
  ImageManifest manifest;
  MOAT_ASSIGN_OR_RETURN(manifest.media_type,
                        check_media_type(doc, content_type, is_manifest_type, "image manifest"));
  const json* config = member(doc, "config");
  if (!config) return invalid("image manifest without a config");
  auto d = parse_descriptor(*config);
  if (!d.ok()) return d.error().wrap("manifest config");
  manifest.config = std::move(*d);
  if (manifest.config.media_type != media_type::kOciConfig &&
      manifest.config.media_type != media_type::kDockerConfig) {
    return make_error("not a container image: config media type is " + manifest.config.media_type,
                      ENOTSUP);
  }
  const json* layers = member(doc, "layers");
  if (!layers || !layers->is_array()) return invalid("image manifest without a layers array");
  if (layers->size() > kMaxLayers) return invalid("image manifest has too many layers");
  for (const json& l : *layers) {
    auto layer = parse_descriptor(l);
    if (!layer.ok()) return layer.error().wrap("manifest layer");
    MOAT_ASSIGN_OR_RETURN(LayerCompression c, layer_compression(layer->media_type));
    manifest.layers.push_back(LayerDescriptor{std::move(*layer), c});
  }
  return manifest;
}

Result<ImageConfig> parse_config(std::string_view body) {
  MOAT_ASSIGN_OR_RETURN(json doc, parse_object(body, kMaxConfigSize, "image config"));
  ImageConfig cfg;
  MOAT_ASSIGN_OR_RETURN(cfg.platform.os, get_string(doc, "os", true));
  MOAT_ASSIGN_OR_RETURN(cfg.platform.architecture, get_string(doc, "architecture", true));
  MOAT_ASSIGN_OR_RETURN(cfg.platform.variant, get_string(doc, "variant", false));
  cfg.platform.architecture = normalize_arch(cfg.platform.architecture, cfg.platform.variant);
  if (const json* c = member(doc, "config")) {
    if (!c->is_object()) return invalid("field 'config' is not an object");
    MOAT_ASSIGN_OR_RETURN(cfg.user, get_string(*c, "User", false));
    MOAT_ASSIGN_OR_RETURN(cfg.working_dir, get_string(*c, "WorkingDir", false));
    MOAT_ASSIGN_OR_RETURN(cfg.stop_signal, get_string(*c, "StopSignal", false));
    MOAT_ASSIGN_OR_RETURN(cfg.env, get_string_array(*c, "Env", 100000));
    MOAT_ASSIGN_OR_RETURN(cfg.entrypoint, get_string_array(*c, "Entrypoint", 100000));
    MOAT_ASSIGN_OR_RETURN(cfg.cmd, get_string_array(*c, "Cmd", 100000));
    MOAT_ASSIGN_OR_RETURN(cfg.labels, get_string_map(*c, "Labels"));
  }
  const json* rootfs = member(doc, "rootfs");
  if (!rootfs || !rootfs->is_object()) return invalid("image config without rootfs");
  MOAT_ASSIGN_OR_RETURN(std::string type, get_string(*rootfs, "type", true));
  if (type != "layers") return invalid("rootfs.type must be 'layers'");
  MOAT_ASSIGN_OR_RETURN(cfg.diff_ids, get_string_array(*rootfs, "diff_ids", kMaxLayers));
  for (const std::string& id : cfg.diff_ids) {
    if (auto st = validate_digest(id); !st.ok()) return st.error().wrap("rootfs.diff_ids");
  }
  return cfg;
}

Result<Descriptor> select_platform(const ImageIndex& index, const Platform& want) {
  std::vector<const Descriptor*> untyped;
  std::string available;
  for (const Descriptor& d : index.manifests) {
    if (is_attestation(d)) continue;
    if (!is_manifest_type(d.media_type) && !is_index_type(d.media_type)) continue;
    if (!d.platform) {
      untyped.push_back(&d);
      continue;
    }
    if (platform_matches(*d.platform, want)) return d;
    available += (available.empty() ? "" : ", ") + d.platform->to_string();
  }
  // An index that names no platforms at all (common in OCI layouts) with a
  // single image means that image.
  if (available.empty() && untyped.size() == 1) return *untyped.front();
  return make_error("no image for platform " + want.to_string() +
                        (available.empty() ? "" : " (available: " + available + ")"),
                    ENOENT);
}

Status check_layer_count(const ImageManifest& manifest, const ImageConfig& config) {
  if (manifest.layers.size() != config.diff_ids.size()) {
    return invalid("manifest lists " + std::to_string(manifest.layers.size()) +
                   " layers but the config has " + std::to_string(config.diff_ids.size()) +
                   " diff_ids");
  }
  return ok_status();
}

}  // namespace moat::image
