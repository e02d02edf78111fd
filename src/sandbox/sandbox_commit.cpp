// `moat commit` (include/moat/root_changes.h): the sandbox's upper as one
// more layer on its image, stored as a new image.
//
//  1. The root reader writes the upper as an OCI layer tar; it is gzipped
//     into a temporary file while its diff_id and digest are taken.
//  2. The new config (base config + diff_id + history + changes) and an OCI
//     manifest (the base's layers, then the new one) are made.
//  3. An OCI layout tar holding the new blobs and an index.json naming REF
//     goes through the store's own loader, which verifies every blob, finds
//     the base layers already in the store, builds the root and records the
//     name, or records nothing.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include <nlohmann/json.hpp>

#include "image/oci/digest.h"
#include "image/oci/image_archive_index.h"
#include "image/oci/manifest.h"
#include "image/oci/reference.h"
#include "image/store/image_archive_load.h"
#include "image/store/image_store.h"
#include "moat/root_changes.h"
#include "sandbox/commit_config.h"
#include "sandbox/layer_sink.h"
#include "sandbox/scratch_files.h"
#include "sandbox/root_changes.h"
#include "store/moat_home.h"
#include "util/unique_fd.h"

namespace moat {
namespace sandbox {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";

std::string now_rfc3339() {
  std::time_t t = ::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A base layer in an OCI manifest: Docker's media types name the same bytes.
Result<std::string> oci_layer_type(const std::string& type) {
  if (type == "application/vnd.docker.image.rootfs.diff.tar.gzip" || type == kOciLayerGzip)
    return std::string(kOciLayerGzip);
  if (type == "application/vnd.oci.image.layer.v1.tar" || type == "application/vnd.oci.image.layer.v1.tar+zstd")
    return type;
  return make_error("the base image has a layer of type " + type + ", which an OCI manifest cannot name", ENOTSUP);
}

struct ArchiveFree {
  void operator()(struct archive* a) const { archive_write_free(a); }
};

Status add_bytes(struct archive* a, const std::string& name, std::string_view bytes) {
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
  archive_entry_copy_pathname(e.get(), name.c_str());
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(bytes.size()));
  if (archive_write_header(a, e.get()) != ARCHIVE_OK ||
      archive_write_data(a, bytes.data(), bytes.size()) != static_cast<la_ssize_t>(bytes.size()))
    return make_error("write " + name + " into the commit's archive: " + archive_error_string(a), EIO);
  return ok_status();
}

Status add_file(struct archive* a, const std::string& name, const std::string& path, std::uint64_t size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open " + path);
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
  archive_entry_copy_pathname(e.get(), name.c_str());
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
  if (archive_write_header(a, e.get()) != ARCHIVE_OK)
    return make_error("write " + name + " into the commit's archive: " + archive_error_string(a), EIO);
  std::vector<char> buf(1 << 20);
  while (true) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read " + path);
    if (n == 0) break;
    if (archive_write_data(a, buf.data(), static_cast<std::size_t>(n)) != n)
      return make_error("write " + name + " into the commit's archive: " + archive_error_string(a), EIO);
  }
  return ok_status();
}

std::string blob_name(const std::string& digest) { return "blobs/sha256/" + digest.substr(7); }

}  // namespace
}  // namespace sandbox

Result<CommittedImage> commit_sandbox(const std::string& id_or_name, const std::string& ref_text,
                                      const CommitOptions& options) {
  using namespace sandbox;
  MOAT_ASSIGN_OR_RETURN(auto ref, image::parse_reference(ref_text));
  if (!ref.digest.empty()) return make_error("commit names the new image by a tag, not a digest: " + ref_text, EINVAL);
  // The changes are checked before anything is read.
  {
    Json probe = Json::object();
    for (const auto& c : options.changes) MOAT_TRY(apply_change(c, probe));
  }
  MOAT_ASSIGN_OR_RETURN(std::string home, store::moat_home());
  MOAT_ASSIGN_OR_RETURN(auto store, image::ImageStore::open(home));
  // Beside the blobs being downloaded: a commit killed half-way leaves its
  // files where `moat image prune` removes stale ones.
  ScratchFiles scratch;
  std::string stem = store->blobs().root() + "/incoming/commit-" + store::random_id(12);
  std::string layer_path = stem + ".layer.gz", archive_path = stem + ".oci.tar";
  scratch.paths = {layer_path, archive_path};

  // 1. The layer.
  MOAT_ASSIGN_OR_RETURN(auto sink, LayerSink::create(layer_path));
  SandboxRecord r;
  MOAT_TRY(read_sandbox_root(id_or_name, "layer", [&](std::string_view b) { return sink->write(b); }, &r));
  MOAT_TRY(sink->finish());
  if (r.info.image_digest.empty())
    return make_error("sandbox " + r.info.name + " has no image to commit onto (its root is a directory or an image "
                      "file): `moat export` writes its root as a tar",
                      EINVAL);

  // 2. Config and manifest.
  MOAT_ASSIGN_OR_RETURN(auto found, store->resolve(r.info.image_digest));
  const image::ImageRecord& base = found.second;
  MOAT_ASSIGN_OR_RETURN(std::string base_config_text, store->blobs().read_verified(base.config_digest, image::kMaxConfigSize));
  Json base_config = Json::parse(base_config_text, nullptr, false);
  MOAT_ASSIGN_OR_RETURN(Json config, commit_config(base_config, sink->diff_id(), options, now_rfc3339(),
                                                   "moat commit " + r.info.name));
  std::string config_text = config.dump();
  std::string config_digest = image::sha256_digest(config_text);
  Json layers = Json::array();
  for (const auto& l : base.layers) {
    MOAT_ASSIGN_OR_RETURN(auto type, oci_layer_type(l.media_type));
    layers.push_back({{"mediaType", type}, {"digest", l.blob_digest}, {"size", l.size}});
  }
  layers.push_back({{"mediaType", kOciLayerGzip}, {"digest", sink->digest()}, {"size", sink->size()}});
  Json manifest = {{"schemaVersion", 2},
                   {"mediaType", image::media_type::kOciManifest},
                   {"config", {{"mediaType", image::media_type::kOciConfig}, {"digest", config_digest},
                               {"size", config_text.size()}}},
                   {"layers", std::move(layers)}};
  std::string manifest_text = manifest.dump();
  std::string manifest_digest = image::sha256_digest(manifest_text);
  Json ann = {{std::string(image::kContainerdNameAnnotation), ref.to_string()}};
  if (!ref.tag.empty()) ann[std::string(image::kRefNameAnnotation)] = ref.tag;
  Json index = {{"schemaVersion", 2},
                {"mediaType", image::media_type::kOciIndex},
                {"manifests", Json::array({{{"mediaType", image::media_type::kOciManifest},
                                            {"digest", manifest_digest},
                                            {"size", manifest_text.size()},
                                            {"annotations", std::move(ann)}}})}};

  // 3. The archive (the base's blobs are already in the store), loaded.
  {
    std::unique_ptr<struct archive, ArchiveFree> a(archive_write_new());
    if (!a || archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
        archive_write_open_filename(a.get(), archive_path.c_str()) != ARCHIVE_OK)
      return make_error("create " + archive_path, EIO);
    MOAT_TRY(add_bytes(a.get(), "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}"));
    MOAT_TRY(add_file(a.get(), blob_name(sink->digest()), layer_path, sink->size()));
    MOAT_TRY(add_bytes(a.get(), blob_name(config_digest), config_text));
    MOAT_TRY(add_bytes(a.get(), blob_name(manifest_digest), manifest_text));
    MOAT_TRY(add_bytes(a.get(), "index.json", index.dump()));
    if (archive_write_close(a.get()) != ARCHIVE_OK) return make_error("finish " + archive_path, EIO);
  }
  ::unlink(layer_path.c_str());
  UniqueFd fd(::open(archive_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open " + archive_path);
  MOAT_ASSIGN_OR_RETURN(auto loaded, image::load_image_archive(*store, fd.get()));
  if (loaded.size() != 1) return make_error("the commit's archive loaded as " + std::to_string(loaded.size()) + " images", EIO);
  CommittedImage out;
  out.ref = loaded[0].names.empty() ? ref.to_string() : loaded[0].names[0];
  out.manifest_digest = loaded[0].manifest_digest;
  out.layer_digest = sink->digest();
  out.layer_size = sink->size();
  return out;
}

}  // namespace moat
