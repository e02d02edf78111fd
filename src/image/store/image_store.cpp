#include "image/store/image_store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <ctime>
#include <set>

#include "image/oci/digest.h"
#include "image/layers/image_builder.h"
#include "image/store/store_lock.h"
#include "store/moat_home.h"

namespace moat::image {

std::string ref_key(const Reference& ref) { return ref.to_string(); }

Result<std::string> ref_key_for(const std::string& text) {
  if (text.rfind(kSha256Prefix, 0) == 0) {
    MOAT_TRY(validate_digest(text));
    return text;
  }
  MOAT_ASSIGN_OR_RETURN(Reference ref, parse_reference(text));
  return ref_key(ref);
}

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
  // MOAT_MAX_UNCOMPRESSED_BYTES lowers (never raises) the bound on the
  // decompressed layer streams of one image: a tighter cap for a host, and
  // how the tests show that a decompression bomb stops early.
  if (const char* cap = std::getenv("MOAT_MAX_UNCOMPRESSED_BYTES")) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(cap, &end, 10);
    if (*cap < '0' || *cap > '9' || *end != '\0' || errno != 0) {  // strtoull takes "-1"
      return make_error("MOAT_MAX_UNCOMPRESSED_BYTES must be a number of bytes", EINVAL);
    }
    opts.limits.max_uncompressed_bytes = std::min<std::uint64_t>(v, opts.limits.max_uncompressed_bytes);
  }
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

namespace {

constexpr std::size_t kMinIdLength = 12;

// 12 to 64 lowercase hex digits: what `moat image ls` shows of a digest.
bool looks_like_image_id(const std::string& text) {
  return text.size() >= kMinIdLength && text.size() <= 64 &&
         text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

bool digest_starts_with(const std::string& digest, const std::string& id) {
  return digest.rfind(kSha256Prefix, 0) == 0 && digest.compare(kSha256Prefix.size(), id.size(), id) == 0;
}

}  // namespace

Result<std::pair<RefRecord, ImageRecord>> ImageStore::resolve(const std::string& image) {
  RefRecord rec;
  if (image.rfind(kSha256Prefix, 0) == 0) {
    MOAT_TRY(validate_digest(image));
    MOAT_ASSIGN_OR_RETURN(rec, resolve_digest(image));
  } else {
    MOAT_ASSIGN_OR_RETURN(auto by_id, resolve_id(image));
    if (by_id) {
      rec = std::move(*by_id);
    } else {
      MOAT_ASSIGN_OR_RETURN(std::string key, ref_key_for(image));
      MOAT_ASSIGN_OR_RETURN(auto found, db_->get_ref(key));
      if (!found) return make_error("no such image: " + key, ENOENT);
      rec = std::move(*found);
    }
  }
  MOAT_ASSIGN_OR_RETURN(auto img, db_->get_image(rec.manifest_digest));
  if (!img) return make_error("image record missing for " + rec.manifest_digest, ENOENT);
  return std::make_pair(std::move(rec), std::move(*img));
}

// An image id names the one image whose digest (the ref's or the
// manifest's) it starts. Hex text that starts none is left to be parsed as
// a reference (a repository may be named "0123456789ab"); one that starts
// two images' digests is an error rather than a guess.
Result<std::optional<RefRecord>> ImageStore::resolve_id(const std::string& id) {
  if (!looks_like_image_id(id)) return std::optional<RefRecord>{};
  MOAT_ASSIGN_OR_RETURN(auto refs, db_->list_refs());
  std::optional<RefRecord> match;
  for (const auto& r : refs) {
    if (!digest_starts_with(r.digest, id) && !digest_starts_with(r.manifest_digest, id)) continue;
    if (match && match->manifest_digest != r.manifest_digest)
      return make_error("image id " + id + " is ambiguous: give more of the digest", EINVAL);
    if (!match) match = r;
  }
  return match;
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
  MOAT_ASSIGN_OR_RETURN(auto found, resolve(source));
  RefRecord rec = std::move(found.first);
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

Status ImageStore::remove(const std::string& ref_text) {
  MOAT_ASSIGN_OR_RETURN(std::string key, ref_key_for(ref_text));
  MOAT_ASSIGN_OR_RETURN(StoreLock lock, StoreLock::acquire(home_, StoreLock::Mode::kExclusive));
  MOAT_ASSIGN_OR_RETURN(auto existing, db_->get_ref(key));
  if (!existing) return make_error("no such image: " + key, ENOENT);
  bool image_removed = false;
  MOAT_ASSIGN_OR_RETURN(auto unused, db_->remove_ref(key, &image_removed));
  if (image_removed) {
    std::string erofs = erofs_path(existing->manifest_digest);
    if (::unlink(erofs.c_str()) != 0 && errno != ENOENT) return errno_error("remove " + erofs);
  }
  for (const auto& d : unused) MOAT_TRY(blobs_.remove(d));
  return ok_status();
}

namespace {

// Deletes `path` if it is a regular file, adding it to the report.
void remove_counted(const std::string& path, std::size_t& count, std::uint64_t& bytes) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  if (::unlink(path.c_str()) != 0) return;
  ++count;
  bytes += static_cast<std::uint64_t>(st.st_size);
}

std::vector<std::string> entries_of(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(std::move(n));
  }
  ::closedir(d);
  return out;
}

bool older_than(const std::string& path, std::chrono::seconds age) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return false;
  return std::time(nullptr) - st.st_mtime >= age.count();
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Result<PruneReport> ImageStore::prune(std::chrono::seconds stale_after) {
  MOAT_ASSIGN_OR_RETURN(StoreLock lock, StoreLock::acquire(home_, StoreLock::Mode::kExclusive));
  PruneReport r;
  MOAT_ASSIGN_OR_RETURN(auto gone, db_->remove_unreferenced_manifests());
  r.images = gone.size();

  // Roots: images/<hex>.erofs whose manifest has no row.
  MOAT_ASSIGN_OR_RETURN(auto manifests, db_->manifest_digests());
  std::set<std::string> known(manifests.begin(), manifests.end());
  for (const auto& name : entries_of(images_dir())) {
    std::string path = images_dir() + "/" + name;
    if (ends_with(name, ".erofs") && name.find(".tmp-") == std::string::npos &&
        name.rfind(".fsck-", 0) != 0) {
      std::string digest = std::string(kSha256Prefix) + name.substr(0, name.size() - 6);
      if (is_valid_digest(digest) && !known.count(digest)) remove_counted(path, r.roots, r.bytes);
      continue;
    }
    // Temp outputs: no build can be running while we hold the lock
    // exclusively, but fsck's rebuilds do not take it, so they get the age
    // rule.
    if (name.find(".tmp-") != std::string::npos ||
        (name.rfind(".fsck-", 0) == 0 && older_than(path, stale_after))) {
      remove_counted(path, r.temp_files, r.bytes);
    }
  }

  // Blobs no row needs.
  MOAT_ASSIGN_OR_RETURN(auto used_list, db_->blobs_in_use());
  std::set<std::string> used(used_list.begin(), used_list.end());
  std::string sha_dir = blobs_.root() + "/sha256";
  for (const auto& name : entries_of(sha_dir)) {
    std::string digest = std::string(kSha256Prefix) + name;
    if (used.count(digest)) continue;
    remove_counted(sha_dir + "/" + name, r.blobs, r.bytes);
  }

  // Interrupted downloads and spool files, once stale. A .partial still
  // locked belongs to a live download (possible only from a writer that
  // does not take the store lock) and stays.
  std::string incoming = blobs_.root() + "/incoming";
  for (const auto& name : entries_of(incoming)) {
    std::string path = incoming + "/" + name;
    if (!older_than(path, stale_after)) continue;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;
    remove_counted(path, r.temp_files, r.bytes);
  }
  return r;
}

}  // namespace moat::image
