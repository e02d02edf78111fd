#include "image/image_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "image/digest.h"
#include "image/image_builder.h"
#include "store/moat_home.h"

namespace moat::image {

std::string ref_key(const Reference& ref) { return ref.to_string(); }

Result<std::unique_ptr<ImageStore>> ImageStore::open(const std::string& home) {
  MOAT_ASSIGN_OR_RETURN(BlobStore blobs, BlobStore::open(BlobStore::default_root(home)));
  MOAT_TRY(store::make_dirs(home + "/images", 0755));
  MOAT_ASSIGN_OR_RETURN(auto db, ImageDb::open(ImageDb::default_path(home)));
  return std::unique_ptr<ImageStore>(new ImageStore(home, std::move(blobs), std::move(db)));
}

std::string ImageStore::erofs_path(const std::string& manifest_digest) const {
  return images_dir() + "/" + manifest_digest.substr(manifest_digest.find(':') + 1) + ".erofs";
}

Result<bool> ImageStore::ensure_root(const ImageRecord& image) {
  std::string out = erofs_path(image.manifest_digest);
  if (::access(out.c_str(), F_OK) == 0) return false;
  std::vector<std::string> files;
  BuildOptions opts;
  opts.tmp_dir = images_dir();
  for (const auto& l : image.layers) {
    if (!blobs_.has(l.blob_digest, l.size)) {
      return make_error("layer " + l.blob_digest + " is missing from the blob store; pull again",
                        ENOENT);
    }
    files.push_back(blobs_.path(l.blob_digest));
    opts.expected_diff_ids.push_back(l.diff_id);
  }
  auto built = build_erofs_image(files, out, opts);
  if (!built) return built.error().wrap("building the root filesystem of " + image.manifest_digest);
  return true;
}

Result<ImageConfig> ImageStore::config_of(const ImageRecord& image) const {
  MOAT_ASSIGN_OR_RETURN(std::string body, blobs_.read_verified(image.config_digest, kMaxConfigSize));
  return parse_config(body);
}

Result<std::pair<RefRecord, ImageRecord>> ImageStore::resolve(const std::string& ref_text) {
  MOAT_ASSIGN_OR_RETURN(Reference ref, parse_reference(ref_text));
  MOAT_ASSIGN_OR_RETURN(auto rec, db_->get_ref(ref_key(ref)));
  if (!rec) return make_error("no such image: " + ref_key(ref), ENOENT);
  MOAT_ASSIGN_OR_RETURN(auto img, db_->get_image(rec->manifest_digest));
  if (!img) return make_error("image record missing for " + rec->manifest_digest, ENOENT);
  return std::make_pair(std::move(*rec), std::move(*img));
}

// A bare digest: the ref that resolved to it (an index keeps its platform
// choice that way), else a manifest recorded under it.
Result<RefRecord> ImageStore::resolve_digest(const std::string& digest) {
  MOAT_ASSIGN_OR_RETURN(auto refs, db_->list_refs());
  for (const auto& r : refs) {
    if (r.digest == digest) return r;
  }
  MOAT_ASSIGN_OR_RETURN(auto img, db_->get_image(digest));
  if (!img) return make_error("no such image: " + digest, ENOENT);
  return RefRecord{"", digest, digest, 0};
}

Result<RefRecord> ImageStore::tag(const std::string& source, const std::string& target) {
  auto target_ref = parse_reference(target);
  if (!target_ref) return target_ref.error().wrap("tag target");
  if (!target_ref->digest.empty()) {
    return make_error("tag target '" + target + "' must be name[:tag], without a digest", EINVAL);
  }
  RefRecord rec;
  if (source.rfind(kSha256Prefix, 0) == 0) {
    MOAT_TRY(validate_digest(source));
    MOAT_ASSIGN_OR_RETURN(rec, resolve_digest(source));
  } else {
    MOAT_ASSIGN_OR_RETURN(auto found, resolve(source));
    rec = std::move(found.first);
  }
  rec.name = ref_key(*target_ref);
  rec.updated = 0;
  MOAT_TRY(db_->add_ref(rec));
  return rec;
}

Result<std::vector<ImageSummary>> ImageStore::list() {
  MOAT_ASSIGN_OR_RETURN(auto refs, db_->list_refs());
  std::vector<ImageSummary> out;
  for (const auto& r : refs) {
    MOAT_ASSIGN_OR_RETURN(auto img, db_->get_image(r.manifest_digest));
    ImageSummary s{r.name, r.digest, r.manifest_digest, "", 0};
    if (img) {
      s.platform = img->platform;
      s.size = img->total_size();
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<nlohmann::json> ImageStore::inspect(const std::string& ref_text) {
  MOAT_ASSIGN_OR_RETURN(auto found, resolve(ref_text));
  auto& [ref, img] = found;
  MOAT_ASSIGN_OR_RETURN(ImageConfig cfg, config_of(img));
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : img.layers) {
    layers.push_back({{"digest", l.blob_digest},
                      {"mediaType", l.media_type},
                      {"diffID", l.diff_id},
                      {"size", l.size}});
  }
  std::string erofs = erofs_path(img.manifest_digest);
  return nlohmann::json{
      {"ref", ref.name},
      {"digest", ref.digest},
      {"manifestDigest", img.manifest_digest},
      {"mediaType", img.media_type},
      {"platform", img.platform},
      {"size", img.total_size()},
      {"config",
       {{"digest", img.config_digest},
        {"Entrypoint", cfg.entrypoint},
        {"Cmd", cfg.cmd},
        {"Env", cfg.env},
        {"WorkingDir", cfg.working_dir},
        {"User", cfg.user},
        {"Labels", cfg.labels}}},
      {"layers", layers},
      {"erofs", ::access(erofs.c_str(), F_OK) == 0 ? nlohmann::json(erofs) : nlohmann::json()},
  };
}

Status ImageStore::remove(const std::string& ref_text) {
  MOAT_ASSIGN_OR_RETURN(Reference ref, parse_reference(ref_text));
  MOAT_ASSIGN_OR_RETURN(auto existing, db_->get_ref(ref_key(ref)));
  if (!existing) return make_error("no such image: " + ref_key(ref), ENOENT);
  bool image_removed = false;
  MOAT_ASSIGN_OR_RETURN(auto unused, db_->remove_ref(ref_key(ref), &image_removed));
  if (image_removed) {
    std::string erofs = erofs_path(existing->manifest_digest);
    if (::unlink(erofs.c_str()) != 0 && errno != ENOENT) return errno_error("remove " + erofs);
  }
  for (const auto& d : unused) MOAT_TRY(blobs_.remove(d));
  return ok_status();
}

}  // namespace moat::image
