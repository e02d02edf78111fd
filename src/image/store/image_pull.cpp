#include "image/store/image_pull.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "image/oci/digest.h"
#include "image/registry/registry_auth.h"
#include "image/store/store_lock.h"

namespace moat::image {
namespace {

// Turns the download threads' byte counts into PullProgress reports, one
// call at a time.
class ProgressReporter {
 public:
  ProgressReporter(const ProgressFn& fn, const std::vector<LayerDescriptor>& layers, std::uint64_t total)
      : fn_(fn), layers_(layers), layer_done_(layers.size(), 0), total_(total) {}

  void add(std::size_t i, std::uint64_t n) {
    if (!fn_) return;
    std::lock_guard lock(mu_);
    layer_done_[i] += n;
    done_ += n;
    report(i, false);
  }

  void layer_complete(std::size_t i) {
    if (!fn_) return;
    std::lock_guard lock(mu_);
    ++layers_done_;
    report(i, true);
  }

 private:
  void report(std::size_t i, bool complete) {
    moat::PullProgress p;
    p.layer = i + 1;
    p.layers = layers_.size();
    p.digest = layers_[i].descriptor.digest;
    p.layer_done = layer_done_[i];
    p.layer_total = layers_[i].descriptor.size;
    p.layer_complete = complete;
    p.done = done_;
    p.total = total_;
    p.layers_done = layers_done_;
    fn_(p);
  }

  const ProgressFn& fn_;
  const std::vector<LayerDescriptor>& layers_;
  std::vector<std::uint64_t> layer_done_;
  std::uint64_t total_;
  std::uint64_t done_ = 0;
  std::size_t layers_done_ = 0;
  std::mutex mu_;
};

Status check_descriptor(const Descriptor& d, std::uint64_t max_size, const char* what) {
  if (auto st = validate_digest(d.digest); !st) return st.error().wrap(what);
  if (d.size > max_size) {
    return make_error(std::string(what) + " " + d.digest + " declares " + std::to_string(d.size) +
                          " bytes, more than the " + std::to_string(max_size) + " allowed",
                      EFBIG);
  }
  return ok_status();
}

// Downloads the layers with a few worker threads; the first error stops the
// others from starting new layers and is returned.
Status download_layers(RegistryClient& client, const BlobStore& blobs,
                       const std::vector<LayerDescriptor>& layers, int parallel, const ProgressFn& progress) {
  std::uint64_t total = 0;
  for (const auto& l : layers) {
    if (!blobs.has(l.descriptor.digest, l.descriptor.size)) total += l.descriptor.size;
  }
  ProgressReporter reporter(progress, layers, total);
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;
  auto worker = [&] {
    while (!failed) {
      std::size_t i = next++;
      if (i >= layers.size()) return;
      const auto& d = layers[i].descriptor;
      Status st = client.fetch_blob(d, blobs, [&](std::uint64_t n) { reporter.add(i, n); });
      if (!st) {
        std::lock_guard lock(mu);
        if (!failed.exchange(true)) first_error = st.error().wrap("layer " + std::to_string(i + 1));
        return;
      }
      reporter.layer_complete(i);
    }
  };
  std::size_t n = std::min<std::size_t>(std::max(parallel, 1), layers.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < n; ++i) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  return first_error;
}

}  // namespace

Result<PullResult> pull_image(ImageStore& store, const Reference& ref, const PullOptions& options) {
  // Shared with other pulls and loads, exclusive against rm and prune: the
  // blobs published below are unreferenced until step 5 records them.
  MOAT_ASSIGN_OR_RETURN(StoreLock lock, StoreLock::acquire(store.home(), StoreLock::Mode::kShared));
  const BlobStore& blobs = store.blobs();
  // Credentials from `moat registry login` come before Docker's config.
  RegistryOptions registry = options.registry;
  if (!registry.credentials) {
    auto creds = stored_credentials(ref.registry, store.home(), registry.docker_config_path);
    if (!creds) return creds.error().wrap("reading registry credentials");
    registry.credentials = *creds;
  }
  MOAT_ASSIGN_OR_RETURN(auto client, RegistryClient::create(ref, registry));

  // 1. The manifest the reference names, then the platform's manifest.
  MOAT_ASSIGN_OR_RETURN(FetchedManifest top,
                        client->get_manifest(ref.digest.empty() ? ref.tag : ref.digest));
  MOAT_ASSIGN_OR_RETURN(ManifestKind kind, detect_manifest_kind(top.body, top.media_type));
  FetchedManifest manifest = top;
  if (kind == ManifestKind::kIndex) {
    MOAT_ASSIGN_OR_RETURN(ImageIndex index, parse_index(top.body, top.media_type));
    MOAT_ASSIGN_OR_RETURN(Descriptor chosen, select_platform(index, options.platform));
    MOAT_TRY(check_descriptor(chosen, kMaxManifestSize, "manifest"));
    MOAT_ASSIGN_OR_RETURN(manifest, client->get_manifest(chosen.digest));
    if (manifest.body.size() != chosen.size) {
      return make_error("manifest " + chosen.digest + " is " +
                            std::to_string(manifest.body.size()) + " bytes, the index says " +
                            std::to_string(chosen.size),
                        EBADMSG);
    }
    MOAT_ASSIGN_OR_RETURN(ManifestKind inner, detect_manifest_kind(manifest.body, manifest.media_type));
    if (inner != ManifestKind::kManifest) {
      return make_error("index entry " + chosen.digest + " is not an image manifest", EPROTO);
    }
    MOAT_TRY(blobs.ingest_bytes(top.body, top.digest));
  }
  MOAT_ASSIGN_OR_RETURN(ImageManifest parsed, parse_manifest(manifest.body, manifest.media_type));

  // 2. Config.
  MOAT_TRY(check_descriptor(parsed.config, kMaxConfigSize, "config"));
  for (const auto& l : parsed.layers) MOAT_TRY(check_descriptor(l.descriptor, kMaxLayerSize, "layer"));
  MOAT_TRY(client->fetch_blob(parsed.config, blobs, nullptr));
  MOAT_ASSIGN_OR_RETURN(std::string config_body,
                        blobs.read_verified(parsed.config.digest, kMaxConfigSize));
  MOAT_ASSIGN_OR_RETURN(ImageConfig config, parse_config(config_body));
  MOAT_TRY(check_layer_count(parsed, config));
  if (kind == ManifestKind::kManifest && options.require_platform &&
      (config.platform.os != options.platform.os ||
       config.platform.architecture != options.platform.architecture)) {
    return make_error("the image is for " + config.platform.to_string() + ", not " +
                          options.platform.to_string(),
                      ENOENT);
  }

  // 3. Layers.
  MOAT_TRY(download_layers(*client, blobs, parsed.layers, options.parallel_downloads,
                           options.on_progress));
  MOAT_TRY(blobs.ingest_bytes(manifest.body, manifest.digest));

  ImageRecord image;
  image.manifest_digest = manifest.digest;
  image.media_type = parsed.media_type;
  image.config_digest = parsed.config.digest;
  image.platform = config.platform.to_string();
  image.manifest_size = manifest.body.size();
  image.config_size = parsed.config.size;
  for (std::size_t i = 0; i < parsed.layers.size(); ++i) {
    const auto& d = parsed.layers[i].descriptor;
    image.layers.push_back(LayerRecord{d.digest, d.media_type, config.diff_ids[i], d.size});
  }

  // 4. Root filesystem, then 5. the records that make it findable.
  PullResult result;
  MOAT_ASSIGN_OR_RETURN(result.built_root, store.ensure_root(image));
  RefRecord rec{ref_key(ref), top.digest, manifest.digest, 0};
  MOAT_TRY(store.db().put_image(image, rec));
  result.ref = rec.name;
  result.digest = top.digest;
  result.manifest_digest = manifest.digest;
  result.erofs_path = store.erofs_path(manifest.digest);
  result.bytes_downloaded = client->bytes_received();
  return result;
}

}  // namespace moat::image
