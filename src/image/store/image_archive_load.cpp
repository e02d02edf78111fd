#include "image/store/image_archive_load.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <set>

#include "image/oci/blob_store.h"
#include "image/oci/digest.h"
#include "image/oci/image_archive_index.h"
#include "image/store/store_lock.h"
#include "image/layers/tar_reader.h"
#include "util/write_all.h"

namespace moat::image {
namespace {

constexpr std::size_t kMaxLinkHops = 8;

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* p, std::size_t n) { EVP_DigestUpdate(ctx_, p, n); }
  std::string finish() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    return sha256_digest_of(md, len);
  }

 private:
  EVP_MD_CTX* ctx_;
};

struct StoredFile {
  std::string digest;
  std::uint64_t size = 0;
};

bool is_metadata_name(const std::string& p) {
  return p == "manifest.json" || p == "index.json" || p == "oci-layout" || p == "repositories";
}

// Legacy per-layer files of old docker-archives that no image reads.
bool is_ignored_name(const std::string& p) {
  auto ends = [&](std::string_view s) {
    return p.size() >= s.size() && p.compare(p.size() - s.size(), s.size(), s) == 0;
  };
  return ends("/json") || ends("/VERSION");
}

// What one pass over the tar found.
class ArchiveScan {
 public:
  ArchiveScan(const BlobStore& blobs, const LoadOptions& options) : blobs_(blobs), options_(options) {}

  Status run(int fd) {
    MOAT_ASSIGN_OR_RETURN(auto tar, TarReader::open_fd(fd));
    tar->set_max_uncompressed(options_.max_total_bytes);
    TarEntry e;
    std::uint64_t entries = 0;
    while (true) {
      auto more = tar->next(e);
      if (!more) return more.error().wrap("reading the archive");
      if (!*more) break;
      if (++entries > options_.max_entries) {
        return make_error("archive has more than " + std::to_string(options_.max_entries) + " entries",
                          EFBIG);
      }
      MOAT_ASSIGN_OR_RETURN(std::string path, clean_archive_path(e.path));
      MOAT_TRY(take(*tar, e, path));
    }
    return ok_status();
  }

  // The stored file a path names, following symlinks and hardlinks.
  Result<StoredFile> lookup(const std::string& raw_path) const {
    MOAT_ASSIGN_OR_RETURN(std::string p, clean_archive_path(raw_path));
    for (std::size_t hop = 0; hop <= kMaxLinkHops; ++hop) {
      if (auto f = files_.find(p); f != files_.end()) return f->second;
      auto l = links_.find(p);
      if (l == links_.end()) break;
      p = l->second;
    }
    return make_error("the archive has no file '" + raw_path + "'", ENOENT);
  }

  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::set<std::string>& created_blobs() const { return created_; }

 private:
  Status take(TarReader& tar, const TarEntry& e, const std::string& path) {
    if (e.is_hardlink) {
      MOAT_ASSIGN_OR_RETURN(std::string target, clean_archive_path(e.link_target));
      links_[path] = target;
      return ok_status();
    }
    switch (e.type) {
      case FileType::kDirectory:
        return ok_status();
      case FileType::kSymlink: {
        MOAT_ASSIGN_OR_RETURN(std::string target, resolve_archive_link(path, e.link_target));
        links_[path] = target;
        return ok_status();
      }
      case FileType::kRegular:
        break;
      default:
        return make_error("archive entry '" + path + "' is not a file, directory or link", EINVAL);
    }
    if (path.empty()) return make_error("archive entry for the root is not a directory", EINVAL);
    if (is_metadata_name(path)) return read_metadata(tar, e, path);
    if (is_ignored_name(path)) return ok_status();
    if (e.size > options_.max_blob_size) {
      return make_error("archive entry '" + path + "' is larger than " +
                            std::to_string(options_.max_blob_size) + " bytes",
                        EFBIG);
    }
    if (std::string digest = digest_from_blob_path(path); !digest.empty()) {
      return store_named(tar, e, path, digest);
    }
    if (path.rfind("blobs/", 0) == 0) {
      return make_error("archive entry '" + path + "' is not blobs/sha256/<64 hex digits>", EINVAL);
    }
    return store_hashed(tar, e, path);
  }

  Status read_metadata(TarReader& tar, const TarEntry& e, const std::string& path) {
    if (e.size > kMaxArchiveMetadataSize) {
      return make_error(path + " is larger than " + std::to_string(kMaxArchiveMetadataSize) + " bytes",
                        EFBIG);
    }
    std::string body(static_cast<std::size_t>(e.size), '\0');
    MOAT_TRY(read_exact(tar, body.data(), body.size(), path));
    metadata_[path] = std::move(body);
    return ok_status();
  }

  static Status read_exact(TarReader& tar, char* p, std::size_t n, const std::string& path) {
    std::size_t got = 0;
    while (got < n) {
      MOAT_ASSIGN_OR_RETURN(std::size_t r, tar.read(p + got, n - got));
      if (r == 0) return make_error("archive entry '" + path + "' is truncated", EIO);
      got += r;
    }
    return ok_status();
  }

  void note_new(const std::string& digest, std::uint64_t size, bool existed) {
    if (!existed) created_.insert(digest);
    files_[current_path_] = StoredFile{digest, size};
  }

  // blobs/sha256/<hex>: streamed straight into the blob store, which refuses
  // it unless it hashes to <hex>.
  Status store_named(TarReader& tar, const TarEntry& e, const std::string& path,
                     const std::string& digest) {
    current_path_ = path;
    bool existed = blobs_.has(digest, e.size);
    MOAT_ASSIGN_OR_RETURN(auto w, blobs_.begin(digest, e.size));
    MOAT_TRY(w->restart());
    std::vector<char> buf(1 << 16);
    std::uint64_t left = e.size;
    while (left > 0) {
      auto r = tar.read(buf.data(), buf.size());
      if (!r || *r == 0) {
        w->discard();
        return r ? make_error("archive entry '" + path + "' is truncated", EIO)
                 : r.error().wrap("reading " + path);
      }
      if (auto st = w->write(buf.data(), *r); !st) {
        w->discard();
        return st.error().wrap(path);
      }
      left -= std::min<std::uint64_t>(left, *r);
    }
    if (auto st = w->commit(); !st) {
      w->discard();
      return st.error().wrap("archive entry " + path);
    }
    note_new(digest, e.size, existed);
    return ok_status();
  }

  // Any other file (an old docker-archive's config and layer tars): its
  // digest is only known at its end, so it is spooled to an unnamed file in
  // blobs/incoming while hashed, then handed to the blob store, which hashes
  // it again as it publishes.
  Status store_hashed(TarReader& tar, const TarEntry& e, const std::string& path) {
    current_path_ = path;
    std::string dir = blobs_.root() + "/incoming";
    UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) return errno_error("creating a spool file in " + dir);
    Sha256 hash;
    std::vector<char> buf(1 << 16);
    std::uint64_t total = 0;
    while (true) {
      MOAT_ASSIGN_OR_RETURN(std::size_t r, tar.read(buf.data(), buf.size()));
      if (r == 0) break;
      total += r;
      if (total > e.size) return make_error("archive entry '" + path + "' is longer than its header", EIO);
      hash.update(buf.data(), r);
      MOAT_TRY(write_all(fd.get(), std::string_view(buf.data(), r), "writing the spool file for " + path));
    }
    if (total != e.size) return make_error("archive entry '" + path + "' is truncated", EIO);
    std::string digest = hash.finish();
    bool existed = blobs_.has(digest, total);
    if (!existed) {
      if (::lseek(fd.get(), 0, SEEK_SET) < 0) return errno_error("seek spool file");
      MOAT_TRY(blobs_.ingest_fd(fd.get(), digest, total));
    }
    note_new(digest, total, existed);
    return ok_status();
  }

  const BlobStore& blobs_;
  const LoadOptions& options_;
  std::map<std::string, StoredFile> files_;   // clean path -> stored blob
  std::map<std::string, std::string> links_;  // clean path -> clean target
  std::map<std::string, std::string> metadata_;
  std::set<std::string> created_;
  std::string current_path_;
};

struct PendingImage {
  LoadedImage loaded;
  ImageRecord record;
};

// The descriptor's blob must be in the store (from this archive or before).
Status require_blob(const BlobStore& blobs, const Descriptor& d, const char* what) {
  MOAT_TRY(validate_digest(d.digest));
  if (!blobs.has(d.digest, d.size)) {
    return make_error(std::string(what) + " " + d.digest + " (" + std::to_string(d.size) +
                          " bytes) is not in the archive",
                      ENOENT);
  }
  return ok_status();
}

// manifest -> ImageRecord, with the config read and checked as a pull does.
Result<ImageRecord> record_for_manifest(const BlobStore& blobs, const std::string& manifest_digest,
                                        std::uint64_t manifest_size) {
  MOAT_ASSIGN_OR_RETURN(std::string body, blobs.read_verified(manifest_digest, kMaxManifestSize));
  MOAT_ASSIGN_OR_RETURN(ImageManifest m, parse_manifest(body));
  MOAT_TRY(require_blob(blobs, m.config, "config"));
  if (m.config.size > kMaxConfigSize) return make_error("config " + m.config.digest + " is too large", EFBIG);
  for (const auto& l : m.layers) MOAT_TRY(require_blob(blobs, l.descriptor, "layer"));
  MOAT_ASSIGN_OR_RETURN(std::string cfg_body, blobs.read_verified(m.config.digest, kMaxConfigSize));
  MOAT_ASSIGN_OR_RETURN(ImageConfig cfg, parse_config(cfg_body));
  MOAT_TRY(check_layer_count(m, cfg));
  ImageRecord r;
  r.manifest_digest = manifest_digest;
  r.media_type = m.media_type.empty() ? std::string(media_type::kOciManifest) : m.media_type;
  r.config_digest = m.config.digest;
  r.platform = cfg.platform.to_string();
  r.manifest_size = manifest_size;
  r.config_size = m.config.size;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const auto& d = m.layers[i].descriptor;
    r.layers.push_back(LayerRecord{d.digest, d.media_type, cfg.diff_ids[i], d.size});
  }
  return r;
}

// One index.json entry: a manifest, or an index to pick the platform from.
Result<PendingImage> image_from_descriptor(const BlobStore& blobs, const Descriptor& d,
                                           const LoadOptions& options) {
  MOAT_TRY(require_blob(blobs, d, "manifest"));
  if (d.size > kMaxManifestSize) return make_error("manifest " + d.digest + " is too large", EFBIG);
  MOAT_ASSIGN_OR_RETURN(std::string body, blobs.read_verified(d.digest, kMaxManifestSize));
  MOAT_ASSIGN_OR_RETURN(ManifestKind kind, detect_manifest_kind(body, d.media_type));
  Descriptor manifest = d;
  if (kind == ManifestKind::kIndex) {
    MOAT_ASSIGN_OR_RETURN(ImageIndex inner, parse_index(body, d.media_type));
    MOAT_ASSIGN_OR_RETURN(manifest, select_platform(inner, options.platform));
    MOAT_TRY(require_blob(blobs, manifest, "manifest"));
    MOAT_ASSIGN_OR_RETURN(std::string mbody, blobs.read_verified(manifest.digest, kMaxManifestSize));
    MOAT_ASSIGN_OR_RETURN(ManifestKind k2, detect_manifest_kind(mbody, manifest.media_type));
    if (k2 != ManifestKind::kManifest) {
      return make_error("index entry " + manifest.digest + " is not an image manifest", EPROTO);
    }
  }
  PendingImage p;
  MOAT_ASSIGN_OR_RETURN(p.record, record_for_manifest(blobs, manifest.digest, manifest.size));
  p.loaded.digest = d.digest;
  p.loaded.manifest_digest = manifest.digest;
  p.loaded.names = names_from_annotations(d);
  return p;
}

// An old docker-archive entry: config + uncompressed layer tars. moat
// writes the OCI manifest for it (make_archive_manifest) and stores it as a
// blob, so the image has a manifest digest like any other.
Result<PendingImage> image_from_docker_entry(const BlobStore& blobs, const ArchiveScan& scan,
                                             const DockerArchiveImage& entry) {
  MOAT_ASSIGN_OR_RETURN(StoredFile config, scan.lookup(entry.config));
  if (config.size > kMaxConfigSize) return make_error("config " + entry.config + " is too large", EFBIG);
  std::vector<ArchiveLayer> layers;
  for (const auto& path : entry.layers) {
    MOAT_ASSIGN_OR_RETURN(StoredFile f, scan.lookup(path));
    std::string head(4, '\0');
    UniqueFd fd(::open(blobs.path(f.digest).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return errno_error("open layer " + f.digest);
    ssize_t n = ::read(fd.get(), head.data(), head.size());
    head.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    layers.push_back(ArchiveLayer{f.digest, f.size, sniff_layer_media_type(head)});
  }
  std::string manifest = make_archive_manifest(config.digest, config.size, layers);
  std::string digest = sha256_digest(manifest);
  MOAT_TRY(blobs.ingest_bytes(manifest, digest));
  PendingImage p;
  MOAT_ASSIGN_OR_RETURN(p.record, record_for_manifest(blobs, digest, manifest.size()));
  p.loaded.digest = digest;
  p.loaded.manifest_digest = digest;
  for (const auto& t : entry.repo_tags) {
    MOAT_ASSIGN_OR_RETURN(std::string name, name_from_repo_tag(t));
    p.loaded.names.push_back(std::move(name));
  }
  return p;
}

// Names from manifest.json's RepoTags go to the index.json image with the
// same config (docker >= 25 writes both files for one image).
void merge_names(std::vector<std::string>& into, const std::vector<std::string>& more) {
  for (const auto& n : more) {
    bool seen = false;
    for (const auto& have : into) seen = seen || have == n;
    if (!seen) into.push_back(n);
  }
}

Result<std::vector<PendingImage>> collect_images(const BlobStore& blobs, const ArchiveScan& scan,
                                                 const LoadOptions& options) {
  const auto& meta = scan.metadata();
  auto index_it = meta.find("index.json");
  auto docker_it = meta.find("manifest.json");
  if (index_it == meta.end() && docker_it == meta.end()) {
    return make_error("not an image archive: no index.json or manifest.json in it", EINVAL);
  }
  std::vector<PendingImage> out;
  if (index_it != meta.end()) {
    auto layout = meta.find("oci-layout");
    if (layout == meta.end()) return make_error("index.json without an oci-layout file", EINVAL);
    MOAT_TRY(check_oci_layout_file(layout->second));
    MOAT_ASSIGN_OR_RETURN(ImageIndex index, parse_layout_index(index_it->second));
    for (const auto& d : index.manifests) {
      auto img = image_from_descriptor(blobs, d, options);
      if (!img) return img.error().wrap("index.json entry " + d.digest);
      // One image under several names is one entry per name in index.json.
      bool merged = false;
      for (auto& have : out) {
        if (have.loaded.digest == img->loaded.digest) {
          merge_names(have.loaded.names, img->loaded.names);
          merged = true;
        }
      }
      if (!merged) out.push_back(std::move(*img));
    }
  }
  if (docker_it != meta.end()) {
    MOAT_ASSIGN_OR_RETURN(auto entries, parse_docker_archive_manifest(docker_it->second));
    for (const auto& e : entries) {
      MOAT_ASSIGN_OR_RETURN(StoredFile config, scan.lookup(e.config));
      bool covered = false;
      for (auto& have : out) {
        if (have.record.config_digest != config.digest) continue;
        covered = true;
        for (const auto& t : e.repo_tags) {
          MOAT_ASSIGN_OR_RETURN(std::string name, name_from_repo_tag(t));
          merge_names(have.loaded.names, {name});
        }
      }
      if (covered) continue;
      auto img = image_from_docker_entry(blobs, scan, e);
      if (!img) return img.error().wrap("manifest.json entry " + e.config);
      out.push_back(std::move(*img));
    }
  }
  if (out.empty()) return make_error("the archive holds no image", EINVAL);
  return out;
}

// After a failure: blobs and roots this load created that no recorded image
// uses go again. Under the exclusive lock, so no pull or load is between
// publishing a blob and recording it.
void discard_unrecorded(ImageStore& store, StoreLock& lock, const std::set<std::string>& blobs,
                        const std::vector<std::string>& roots) {
  lock.release();
  auto excl = StoreLock::acquire(store.home(), StoreLock::Mode::kExclusive);
  if (!excl) return;
  for (const auto& d : blobs) {
    auto used = store.db().blob_in_use(d);
    if (used && !*used) (void)store.blobs().remove(d);
  }
  for (const auto& m : roots) {
    auto img = store.db().get_image(m);
    if (img && !*img) ::unlink(store.erofs_path(m).c_str());
  }
}

}  // namespace

Result<std::vector<LoadedImage>> load_image_archive(ImageStore& store, int fd,
                                                    const LoadOptions& options) {
  MOAT_ASSIGN_OR_RETURN(StoreLock lock, StoreLock::acquire(store.home(), StoreLock::Mode::kShared));
  ArchiveScan scan(store.blobs(), options);
  std::vector<std::string> built;
  auto fail = [&](const Error& e) -> Result<std::vector<LoadedImage>> {
    discard_unrecorded(store, lock, scan.created_blobs(), built);
    return e;
  };
  if (auto st = scan.run(fd); !st) return fail(st.error());
  auto images = collect_images(store.blobs(), scan, options);
  if (!images) return fail(images.error());
  // Every root first, then the records: a failure leaves no image half-named.
  for (auto& p : *images) {
    auto b = store.ensure_root(p.record);
    if (!b) return fail(b.error());
    p.loaded.built_root = *b;
    if (*b) built.push_back(p.record.manifest_digest);
    p.loaded.erofs_path = store.erofs_path(p.record.manifest_digest);
    if (p.loaded.names.empty()) p.loaded.names.push_back(p.loaded.digest);
  }
  std::vector<LoadedImage> out;
  for (auto& p : *images) {
    for (const auto& name : p.loaded.names) {
      RefRecord ref{name, p.loaded.digest, p.loaded.manifest_digest, 0};
      if (auto st = store.db().put_image(p.record, ref); !st) return fail(st.error());
    }
    out.push_back(std::move(p.loaded));
  }
  return out;
}

}  // namespace moat::image
