#include "image/oci/image_archive_index.h"

#include <cerrno>
#include <nlohmann/json.hpp>

#include "image/oci/digest.h"
#include "image/oci/json_guard.h"
#include "image/oci/reference.h"
#include "util/path_names.h"

namespace moat::image {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxPathBytes = 1024;
constexpr std::size_t kMaxPathComponents = 8;

Error invalid(const std::string& what) { return make_error(what, EINVAL); }

Result<json> parse_json(std::string_view text, const char* what) {
  if (text.size() > kMaxArchiveMetadataSize) {
    return make_error(std::string(what) + " is larger than " +
                          std::to_string(kMaxArchiveMetadataSize) + " bytes",
                      EFBIG);
  }
  MOAT_TRY(check_json_nesting(text));
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return invalid(std::string(what) + " is not valid JSON");
  return doc;
}

Result<std::vector<std::string>> string_array(const json& obj, const char* key, std::size_t max,
                                              bool required) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return invalid(std::string("manifest.json entry without ") + key);
    return out;
  }
  if (!it->is_array()) return invalid(std::string("manifest.json: ") + key + " is not an array");
  if (it->size() > max) return invalid(std::string("manifest.json: too many ") + key);
  for (const auto& v : *it) {
    if (!v.is_string()) return invalid(std::string("manifest.json: ") + key + " holds a non-string");
    out.push_back(v.get<std::string>());
  }
  return out;
}

bool is_tag_only(std::string_view s) {
  return s.find('/') == std::string_view::npos && s.find(':') == std::string_view::npos &&
         s.find('@') == std::string_view::npos;
}

}  // namespace

Result<std::vector<DockerArchiveImage>> parse_docker_archive_manifest(std::string_view body) {
  MOAT_ASSIGN_OR_RETURN(json doc, parse_json(body, "manifest.json"));
  if (!doc.is_array()) return invalid("manifest.json is not a JSON array");
  if (doc.size() > kMaxArchiveImages) return invalid("manifest.json lists too many images");
  std::vector<DockerArchiveImage> out;
  for (const auto& e : doc) {
    if (!e.is_object()) return invalid("manifest.json entry is not an object");
    DockerArchiveImage img;
    auto cfg = e.find("Config");
    if (cfg == e.end() || !cfg->is_string() || cfg->get<std::string>().empty()) {
      return invalid("manifest.json entry without a Config path");
    }
    img.config = cfg->get<std::string>();
    MOAT_ASSIGN_OR_RETURN(img.repo_tags, string_array(e, "RepoTags", kMaxRepoTags, false));
    MOAT_ASSIGN_OR_RETURN(img.layers, string_array(e, "Layers", kMaxLayers, true));
    out.push_back(std::move(img));
  }
  return out;
}

Result<ImageIndex> parse_layout_index(std::string_view body) {
  if (body.size() > kMaxArchiveMetadataSize) {
    return make_error("index.json is larger than " + std::to_string(kMaxArchiveMetadataSize) +
                          " bytes",
                      EFBIG);
  }
  auto index = parse_index(body);
  if (!index) return index.error().wrap("index.json");
  if (index->manifests.size() > kMaxArchiveImages) return invalid("index.json lists too many images");
  return index;
}

Status check_oci_layout_file(std::string_view body) {
  MOAT_ASSIGN_OR_RETURN(json doc, parse_json(body, "oci-layout"));
  if (!doc.is_object()) return invalid("oci-layout is not a JSON object");
  auto v = doc.find("imageLayoutVersion");
  if (v == doc.end() || !v->is_string()) return invalid("oci-layout without imageLayoutVersion");
  if (v->get<std::string>() != "1.0.0") {
    return invalid("unsupported OCI layout version " + v->get<std::string>());
  }
  return ok_status();
}

Result<std::string> name_from_repo_tag(std::string_view tag) {
  auto ref = parse_reference(tag);
  if (!ref) return ref.error().wrap("image name '" + std::string(tag.substr(0, 256)) + "'");
  return ref->to_string();
}

std::vector<std::string> names_from_annotations(const Descriptor& d) {
  std::vector<std::string> out;
  auto add = [&](const std::string& text) {
    auto name = name_from_repo_tag(text);
    if (!name) return;
    for (const auto& n : out) {
      if (n == *name) return;
    }
    out.push_back(*name);
  };
  if (auto it = d.annotations.find(std::string(kContainerdNameAnnotation)); it != d.annotations.end()) {
    add(it->second);
  }
  if (auto it = d.annotations.find(std::string(kRefNameAnnotation)); it != d.annotations.end()) {
    if (!is_tag_only(it->second)) add(it->second);
  }
  return out;
}

Result<std::string> clean_archive_path(std::string_view path) {
  if (path.size() > kMaxPathBytes) return invalid("archive entry name longer than 1024 bytes");
  if (path.find('\0') != std::string_view::npos) return invalid("archive entry name contains NUL");
  if (!path.empty() && path.front() == '/') {
    return invalid("absolute archive entry name '" + std::string(path) + "'");
  }
  // An entry name refuses ".."; a symlink target (below) resolves it.
  std::string out;
  std::size_t components = 0;
  MOAT_TRY(for_each_path_name(path, [&](std::string_view c) -> Status {
    if (c == "..") return invalid("archive entry name '" + std::string(path) + "' contains '..'");
    if (++components > kMaxPathComponents) {
      return invalid("archive entry name '" + std::string(path) + "' is nested too deeply");
    }
    if (!out.empty()) out += '/';
    out += c;
    return ok_status();
  }));
  return out;
}

Result<std::string> resolve_archive_link(std::string_view link_path, std::string_view target) {
  if (target.empty()) return invalid("symlink '" + std::string(link_path) + "' has an empty target");
  if (target.front() == '/') {
    return invalid("symlink '" + std::string(link_path) + "' has an absolute target");
  }
  std::vector<std::string> parts;
  std::string_view dir = link_path;
  auto slash = dir.rfind('/');
  dir = slash == std::string_view::npos ? std::string_view() : dir.substr(0, slash);
  auto push = [&](std::string_view c) -> Status {
    if (c == "..") {
      if (parts.empty()) {
        return invalid("symlink '" + std::string(link_path) + "' points outside the archive");
      }
      parts.pop_back();
      return ok_status();
    }
    parts.emplace_back(c);
    if (parts.size() > kMaxPathComponents) return invalid("symlink target nested too deeply");
    return ok_status();
  };
  MOAT_TRY(for_each_path_name(dir, push));
  MOAT_TRY(for_each_path_name(target, push));
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
  if (out.size() > kMaxPathBytes) return invalid("symlink target longer than 1024 bytes");
  return out;
}

std::string digest_from_blob_path(std::string_view p) {
  constexpr std::string_view kPrefix = "blobs/sha256/";
  if (p.substr(0, kPrefix.size()) != kPrefix) return "";
  std::string digest = std::string(kSha256Prefix) + std::string(p.substr(kPrefix.size()));
  return is_valid_digest(digest) ? digest : "";
}

std::string blob_path_for(std::string_view digest) {
  return "blobs/sha256/" + std::string(digest.substr(kSha256Prefix.size()));
}

std::string make_archive_manifest(const std::string& config_digest, std::uint64_t config_size,
                                  const std::vector<ArchiveLayer>& layers) {
  json j;
  j["schemaVersion"] = 2;
  j["mediaType"] = std::string(media_type::kOciManifest);
  j["config"] = {{"mediaType", std::string(media_type::kOciConfig)},
                 {"digest", config_digest},
                 {"size", config_size}};
  json ls = json::array();
  for (const auto& l : layers) {
    ls.push_back({{"mediaType", l.media_type}, {"digest", l.digest}, {"size", l.size}});
  }
  j["layers"] = std::move(ls);
  return j.dump();
}

std::string sniff_layer_media_type(std::string_view head) {
  auto starts = [&](std::string_view magic) { return head.substr(0, magic.size()) == magic; };
  if (starts(std::string_view("\x1f\x8b", 2))) return "application/vnd.oci.image.layer.v1.tar+gzip";
  if (starts(std::string_view("\x28\xb5\x2f\xfd", 4))) {
    return "application/vnd.oci.image.layer.v1.tar+zstd";
  }
  return "application/vnd.oci.image.layer.v1.tar";
}

}  // namespace moat::image
