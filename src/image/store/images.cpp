// include/moat/images.h over the image store: each call opens the store in
// $MOAT_HOME, does one thing, and returns typed values.
#include "moat/images.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "image/store/image_archive_load.h"
#include "image/store/image_archive_save.h"
#include "image/store/image_fsck.h"
#include "image/store/image_pull.h"
#include "image/store/image_store.h"
#include "image/registry/registry_auth.h"
#include "image/registry/registry_login.h"
#include "image/store/store_lock.h"
#include "util/temp_output.h"
#include "store/moat_home.h"

namespace moat {
namespace {

Result<std::unique_ptr<image::ImageStore>> open_store() {
  MOAT_ASSIGN_OR_RETURN(std::string home, store::moat_home());
  return image::ImageStore::open(home);
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Text only a path can be: absolute, or relative from . or ..
bool is_path_syntax(const std::string& text) {
  return text.rfind('/', 0) == 0 || text.rfind("./", 0) == 0 || text.rfind("../", 0) == 0;
}

ImageDetails details_of(image::ImageStore& store, const image::RefRecord& ref, const image::ImageRecord& img,
                        const image::ImageConfig& cfg) {
  ImageDetails d;
  d.ref = ref.name;
  d.digest = ref.digest;
  d.manifest_digest = img.manifest_digest;
  d.media_type = img.media_type;
  d.platform = img.platform;
  d.size = img.total_size();
  d.config_digest = img.config_digest;
  d.entrypoint = cfg.entrypoint;
  d.cmd = cfg.cmd;
  d.env = cfg.env;
  d.working_dir = cfg.working_dir;
  d.user = cfg.user;
  d.labels = cfg.labels;
  for (const auto& l : img.layers) d.layers.push_back(ImageLayer{l.blob_digest, l.media_type, l.diff_id, l.size});
  std::string root = store.erofs_path(img.manifest_digest);
  if (::access(root.c_str(), F_OK) == 0) d.root_path = root;
  return d;
}

}  // namespace

Result<PulledImage> pull_image(const std::string& ref_text, const PullOptions& options) {
  MOAT_ASSIGN_OR_RETURN(auto ref, image::parse_reference(ref_text));
  image::PullOptions opts;
  if (!options.platform.empty()) {
    auto platform = image::parse_platform(options.platform);
    if (!platform) return platform.error().wrap("platform");
    opts.platform = *platform;
    opts.require_platform = true;
  }
  opts.registry.insecure = options.insecure_registry;
  opts.parallel_downloads = options.parallel_downloads;
  opts.on_progress = options.on_progress;
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  auto r = image::pull_image(*store, ref, opts);
  if (!r) return r.error().wrap("pull " + ref.to_string());
  return PulledImage{r->ref, r->digest, r->manifest_digest, r->erofs_path, r->built_root, r->bytes_downloaded};
}

Result<std::vector<ImageSummary>> list_images() {
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  MOAT_ASSIGN_OR_RETURN(auto images, store->list());
  std::vector<ImageSummary> out;
  for (auto& i : images) out.push_back(ImageSummary{i.ref, i.digest, i.manifest_digest, i.platform, i.size});
  return out;
}

Result<ImageDetails> inspect_image(const std::string& image) {
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  MOAT_ASSIGN_OR_RETURN(auto found, store->resolve(image));
  MOAT_ASSIGN_OR_RETURN(auto cfg, store->config_of(found.second));
  return details_of(*store, found.first, found.second, cfg);
}

Status remove_image(const std::string& ref) {
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  return store->remove(ref);
}

Result<TaggedImage> tag_image(const std::string& source, const std::string& target) {
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  MOAT_ASSIGN_OR_RETURN(auto rec, store->tag(source, target));
  return TaggedImage{rec.name, rec.digest};
}

Result<std::string> image_root_file(const std::string& image) {
  if (is_regular_file(image)) return image;
  if (is_path_syntax(image)) return errno_error(image, ENOENT);
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  auto found = store->resolve(image);
  if (!found) {
    // "dir/name" could have been meant as either.
    if (found.error().code == ENOENT && image.find('/') != std::string::npos)
      return make_error(image + ": no such file, and " + found.error().message, ENOENT);
    return found.error();
  }
  MOAT_TRY(store->ensure_root(found->second));
  return store->erofs_path(found->second.manifest_digest);
}

Result<std::vector<ImageCheck>> check_images(const std::vector<std::string>& images) {
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  // Shared: a concurrent prune or rm must not delete what is being checked.
  MOAT_ASSIGN_OR_RETURN(auto lock, image::StoreLock::acquire(store->home(), image::StoreLock::Mode::kShared));
  MOAT_ASSIGN_OR_RETURN(auto reports, image::fsck_images(*store, images));
  std::vector<ImageCheck> out;
  for (auto& r : reports) out.push_back(ImageCheck{r.ref, r.digest, r.problems});
  return out;
}

Result<PruneReport> prune_images() {
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  auto r = store->prune();
  if (!r) return r.error().wrap("prune");
  return PruneReport{r->images, r->blobs, r->roots, r->temp_files, r->bytes};
}

Result<ArchiveFormat> parse_archive_format(const std::string& text) {
  MOAT_ASSIGN_OR_RETURN(auto f, image::parse_archive_format(text));
  return f == image::ArchiveFormat::kOci ? ArchiveFormat::kOci : ArchiveFormat::kDocker;
}

Result<std::vector<LoadedImage>> load_images(int fd) {
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  MOAT_ASSIGN_OR_RETURN(auto images, image::load_image_archive(*store, fd));
  std::vector<LoadedImage> out;
  for (auto& i : images) out.push_back(LoadedImage{i.names, i.digest, i.manifest_digest, i.erofs_path, i.built_root});
  return out;
}

namespace {

image::ArchiveFormat internal_format(ArchiveFormat f) {
  return f == ArchiveFormat::kOci ? image::ArchiveFormat::kOci : image::ArchiveFormat::kDocker;
}

}  // namespace

Status save_images(const std::vector<std::string>& images, ArchiveFormat format, int fd) {
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  return image::save_image_archive(*store, images, internal_format(format), fd);
}

Status save_images_to_file(const std::vector<std::string>& images, ArchiveFormat format, const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(auto store, open_store());
  MOAT_ASSIGN_OR_RETURN(auto out, image::TempOutput::create(path));
  MOAT_TRY(image::save_image_archive(*store, images, internal_format(format), out.fd()));
  return out.commit();
}

Result<std::string> registry_name(const std::string& text) { return image::normalize_registry_name(text); }

Result<std::string> registry_login(const std::string& registry, const std::string& username,
                                   const std::string& password, bool insecure) {
  MOAT_ASSIGN_OR_RETURN(std::string name, image::normalize_registry_name(registry));
  if (username.empty() || username.find(':') != std::string::npos)
    return make_error("login: the username must be non-empty and without ':'", EINVAL);
  if (password.empty()) return make_error("login: empty password", EINVAL);
  image::Credentials c{username, password};
  image::LoginOptions lo;
  lo.insecure = insecure;
  MOAT_TRY(image::verify_registry_login(name, c, lo));
  MOAT_ASSIGN_OR_RETURN(std::string home, store::moat_home());
  MOAT_TRY(store::make_dirs(home, 0700));
  MOAT_TRY(image::write_auth_entry(image::moat_auth_path(home), name, c));
  return name;
}

Result<std::string> registry_logout(const std::string& registry) {
  MOAT_ASSIGN_OR_RETURN(std::string name, image::normalize_registry_name(registry));
  MOAT_ASSIGN_OR_RETURN(std::string home, store::moat_home());
  MOAT_ASSIGN_OR_RETURN(bool removed, image::write_auth_entry(image::moat_auth_path(home), name, std::nullopt));
  if (!removed) return make_error("not logged in to " + name, ENOENT);
  return name;
}

}  // namespace moat
