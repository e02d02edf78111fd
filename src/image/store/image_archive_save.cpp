#include "image/store/image_archive_save.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "image/oci/digest.h"
#include "image/oci/image_archive_index.h"
#include "image/store/store_lock.h"

namespace moat::image {
namespace {

using json = nlohmann::json;

struct SavedImage {
  ImageRecord record;
  std::vector<std::string> names;  // full references; empty for an unnamed image
};

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
using ArchivePtr = std::unique_ptr<struct archive, ArchiveDeleter>;
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

class TarWriter {
 public:
  static Result<TarWriter> open(int fd) {
    TarWriter w;
    w.a_.reset(archive_write_new());
    if (!w.a_) return make_error("libarchive: out of memory", ENOMEM);
    // pax_restricted: plain ustar headers unless a value does not fit (a
    // layer over 8 GiB), so the bytes stay the same from run to run.
    if (archive_write_set_format_pax_restricted(w.a_.get()) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(w.a_.get(), 1) != ARCHIVE_OK ||
        archive_write_open_fd(w.a_.get(), fd) != ARCHIVE_OK) {
      return w.error("opening the output");
    }
    return w;
  }

  Status dir(const std::string& path) { return header(path, AE_IFDIR, 0755, 0); }

  Status file(const std::string& path, std::string_view data) {
    MOAT_TRY(header(path, AE_IFREG, 0644, data.size()));
    return write(data.data(), data.size(), path);
  }

  // Copies a stored blob, hashing it: corrupt store data never leaves.
  Status blob(const BlobStore& blobs, const std::string& digest, std::uint64_t size) {
    std::string p = blobs.path(digest);
    UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return errno_error("open blob " + digest);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return errno_error("stat " + p);
    if (static_cast<std::uint64_t>(st.st_size) != size) {
      return make_error("blob " + digest + " is " + std::to_string(st.st_size) +
                            " bytes, the database says " + std::to_string(size),
                        EBADMSG);
    }
    std::string name = blob_path_for(digest);
    MOAT_TRY(header(name, AE_IFREG, 0644, size));
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> guard(ctx, EVP_MD_CTX_free);
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    std::vector<char> buf(1 << 16);
    std::uint64_t left = size;
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.data(), std::min<std::uint64_t>(buf.size(), left));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return errno_error("read " + p, n == 0 ? EIO : errno);
      EVP_DigestUpdate(ctx, buf.data(), static_cast<std::size_t>(n));
      MOAT_TRY(write(buf.data(), static_cast<std::size_t>(n), name));
      left -= static_cast<std::uint64_t>(n);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    if (std::string got = sha256_digest_of(md, len); got != digest) {
      return make_error("blob " + digest + " in the store is corrupt (hashes to " + got +
                            "); run moat image fsck",
                        EBADMSG);
    }
    return ok_status();
  }

  Status close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) return error("finishing the archive");
    return ok_status();
  }

 private:
  Status header(const std::string& path, unsigned type, unsigned perm, std::uint64_t size) {
    std::unique_ptr<archive_entry, EntryDeleter> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), path.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), perm);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    archive_entry_set_mtime(e.get(), 0, 0);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) return error("writing " + path);
    return ok_status();
  }

  Status write(const char* p, std::size_t n, const std::string& what) {
    while (n > 0) {
      la_ssize_t w = archive_write_data(a_.get(), p, n);
      if (w <= 0) return error("writing " + what);
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return ok_status();
  }

  Error error(const std::string& what) const {
    const char* msg = archive_error_string(a_.get());
    int code = archive_errno(a_.get());
    return make_error(what + ": " + (msg ? msg : "libarchive error"), code > 0 ? code : EIO);
  }

  ArchivePtr a_;
};

// A requested name: its record, and the name to put in the archive (none
// for a digest).
Result<SavedImage> find_image(ImageStore& store, const std::string& text) {
  SavedImage s;
  auto found = store.resolve(text);
  if (found) {
    s.record = std::move(found->second);
    if (found->first.name.rfind(kSha256Prefix, 0) != 0) s.names.push_back(found->first.name);
    return s;
  }
  // A manifest digest with no ref of that name.
  if (text.rfind(kSha256Prefix, 0) == 0 && is_valid_digest(text)) {
    MOAT_ASSIGN_OR_RETURN(auto img, store.db().get_image(text));
    if (img) {
      s.record = std::move(*img);
      return s;
    }
  }
  return found.error();
}

json index_entry(const ImageRecord& img, const std::string& name) {
  json d = {{"mediaType", img.media_type}, {"digest", img.manifest_digest}, {"size", img.manifest_size}};
  if (name.empty()) return d;
  json ann = {{std::string(kContainerdNameAnnotation), name}};
  if (auto ref = parse_reference(name); ref && !ref->tag.empty()) {
    ann[std::string(kRefNameAnnotation)] = ref->tag;
  }
  d["annotations"] = std::move(ann);
  return d;
}

json docker_entry(const SavedImage& s) {
  json tags = json::array();
  for (const auto& n : s.names) {
    if (auto ref = parse_reference(n); ref && !ref->tag.empty() && ref->digest.empty()) {
      tags.push_back(n);
    }
  }
  json layers = json::array();
  for (const auto& l : s.record.layers) layers.push_back(blob_path_for(l.blob_digest));
  return {{"Config", blob_path_for(s.record.config_digest)},
          {"RepoTags", tags.empty() ? json() : tags},
          {"Layers", layers}};
}

}  // namespace

Result<ArchiveFormat> parse_archive_format(const std::string& text) {
  if (text == "oci") return ArchiveFormat::kOci;
  if (text == "docker" || text == "docker-archive") return ArchiveFormat::kDocker;
  return make_error("unknown archive format '" + text + "' (oci or docker)", EINVAL);
}

Status save_image_archive(ImageStore& store, const std::vector<std::string>& refs,
                          ArchiveFormat format, int out_fd) {
  if (refs.empty()) return make_error("no image to save", EINVAL);
  MOAT_ASSIGN_OR_RETURN(StoreLock lock, StoreLock::acquire(store.home(), StoreLock::Mode::kShared));
  // Requested order; one image asked for under several names is one image.
  std::vector<SavedImage> images;
  for (const auto& r : refs) {
    auto s = find_image(store, r);
    if (!s) return s.error();
    bool merged = false;
    for (auto& have : images) {
      if (have.record.manifest_digest != s->record.manifest_digest) continue;
      for (const auto& n : s->names) {
        bool seen = false;
        for (const auto& h : have.names) seen = seen || h == n;
        if (!seen) have.names.push_back(n);
      }
      merged = true;
    }
    if (!merged) images.push_back(std::move(*s));
  }

  json index = {{"schemaVersion", 2}, {"mediaType", std::string(media_type::kOciIndex)}};
  json manifests = json::array();
  json docker = json::array();
  // Blob order: by digest, each once.
  std::map<std::string, std::uint64_t> blobs;
  for (const auto& s : images) {
    if (s.names.empty()) manifests.push_back(index_entry(s.record, ""));
    for (const auto& n : s.names) manifests.push_back(index_entry(s.record, n));
    docker.push_back(docker_entry(s));
    blobs[s.record.manifest_digest] = s.record.manifest_size;
    blobs[s.record.config_digest] = s.record.config_size;
    for (const auto& l : s.record.layers) blobs[l.blob_digest] = l.size;
  }
  index["manifests"] = std::move(manifests);

  MOAT_ASSIGN_OR_RETURN(TarWriter tar, TarWriter::open(out_fd));
  MOAT_TRY(tar.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  MOAT_TRY(tar.file("index.json", index.dump()));
  if (format == ArchiveFormat::kDocker) MOAT_TRY(tar.file("manifest.json", docker.dump()));
  MOAT_TRY(tar.dir("blobs/"));
  MOAT_TRY(tar.dir("blobs/sha256/"));
  for (const auto& [digest, size] : blobs) MOAT_TRY(tar.blob(store.blobs(), digest, size));
  return tar.close();
}

}  // namespace moat::image
