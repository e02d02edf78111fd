#include "image/store/image_fsck.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <memory>
#include <optional>

#include "image/oci/digest.h"
#include "image/layers/image_builder.h"
#include "util/subprocess.h"
#include "util/unique_fd.h"

namespace moat::image {
namespace {

constexpr std::size_t kReadChunk = 1 << 20;

// Reads up to `len` bytes, retrying short reads; 0 only at end of file.
Result<std::size_t> read_full(int fd, char* buf, std::size_t len) {
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::read(fd, buf + got, len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read");
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

Result<UniqueFd> open_read(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open " + path);
  return fd;
}

// An empty string when the blob is present with this digest (and size, when
// `size` is known), otherwise what is wrong with it.
std::string check_blob(const BlobStore& blobs, const std::string& digest, const std::uint64_t* size) {
  auto got = hash_file(blobs.path(digest));
  if (!got) return "blob " + digest + ": " + got.error().message;
  if (size && got->size != *size) {
    return "blob " + digest + ": size " + std::to_string(got->size) + ", expected " +
           std::to_string(*size);
  }
  if (got->digest != digest) return "blob " + digest + ": content hashes to " + got->digest;
  return "";
}

std::vector<std::string> check_blobs(const BlobStore& blobs, const ImageRecord& img) {
  std::vector<std::string> problems;
  auto add = [&](const std::string& p) {
    if (!p.empty()) problems.push_back(p);
  };
  add(check_blob(blobs, img.manifest_digest, &img.manifest_size));
  add(check_blob(blobs, img.config_digest, &img.config_size));
  for (const auto& l : img.layers) add(check_blob(blobs, l.blob_digest, &l.size));
  return problems;
}

Result<bool> same_bytes(const std::string& a, const std::string& b) {
  MOAT_ASSIGN_OR_RETURN(UniqueFd fa, open_read(a));
  MOAT_ASSIGN_OR_RETURN(UniqueFd fb, open_read(b));
  std::string ba(kReadChunk, '\0'), bb(kReadChunk, '\0');
  while (true) {
    MOAT_ASSIGN_OR_RETURN(std::size_t na, read_full(fa.get(), ba.data(), ba.size()));
    MOAT_ASSIGN_OR_RETURN(std::size_t nb, read_full(fb.get(), bb.data(), bb.size()));
    if (na != nb || ba.compare(0, na, bb, 0, nb) != 0) return false;
    if (na == 0) return true;
  }
}

// Builds the root again next to the real one (same filesystem, so the
// images directory's space is what a pull would need anyway) and compares.
std::string check_rebuild(ImageStore& store, const ImageRecord& img, const std::string& root) {
  std::string tmp = store.images_dir() + "/.fsck-" + std::to_string(::getpid()) + "-" +
                    img.manifest_digest.substr(kSha256Prefix.size()) + ".erofs";
  std::vector<std::string> files;
  BuildOptions opts;
  opts.tmp_dir = store.images_dir();
  for (const auto& l : img.layers) {
    files.push_back(store.blobs().path(l.blob_digest));
    opts.expected_diff_ids.push_back(l.diff_id);
  }
  std::string problem;
  if (auto built = build_erofs_image(files, tmp, opts); !built) {
    problem = "rebuilding the root: " + built.error().message;
  } else if (auto same = same_bytes(root, tmp); !same) {
    problem = "root " + root + ": " + same.error().message;
  } else if (!*same) {
    problem = "root " + root + ": differs from a rebuild from the layers";
  }
  ::unlink(tmp.c_str());
  return problem;
}

std::string check_root(ImageStore& store, const ImageRecord& img) {
  std::string root = store.erofs_path(img.manifest_digest);
  if (::access(root.c_str(), F_OK) != 0) return "root " + root + ": missing";
  auto fsck = run_command({"fsck.erofs", root});
  if (!fsck) return "root " + root + ": running fsck.erofs: " + fsck.error().message;
  if (fsck->exit_code != 0) {
    std::string out = fsck->output;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    auto nl = out.rfind('\n');
    return "root " + root + ": fsck.erofs exited " + std::to_string(fsck->exit_code) +
           (out.empty() ? "" : " (" + out.substr(nl == std::string::npos ? 0 : nl + 1) + ")");
  }
  return check_rebuild(store, img, root);
}

std::vector<std::string> check_image(ImageStore& store, const std::string& manifest_digest) {
  auto img = store.db().get_image(manifest_digest);
  if (!img) return {img.error().message};
  if (!*img) return {"image record missing for " + manifest_digest};
  auto problems = check_blobs(store.blobs(), **img);
  // Corrupt layers cannot rebuild the root; their own lines say enough.
  if (problems.empty()) {
    if (auto p = check_root(store, **img); !p.empty()) problems.push_back(p);
  }
  return problems;
}

}  // namespace

Result<FileDigest> hash_file(const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(UniqueFd fd, open_read(path));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return make_error("sha256: cannot initialise", EIO);
  }
  FileDigest out;
  std::string buf(kReadChunk, '\0');
  while (true) {
    MOAT_ASSIGN_OR_RETURN(std::size_t n, read_full(fd.get(), buf.data(), buf.size()));
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
    out.size += n;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  out.digest = sha256_digest_of(md, len);
  return out;
}

Result<std::vector<FsckReport>> fsck_images(ImageStore& store, const std::vector<std::string>& refs) {
  struct Target {
    std::string name;
    std::optional<RefRecord> ref;
    std::string error;  // why `name` did not resolve
  };
  std::vector<Target> targets;
  if (refs.empty()) {
    MOAT_ASSIGN_OR_RETURN(auto all, store.db().list_refs());
    for (auto& r : all) targets.push_back(Target{r.name, std::move(r), ""});
  } else {
    for (const auto& text : refs) {
      auto found = store.resolve(text);
      if (found) {
        targets.push_back(Target{found->first.name, std::move(found->first), ""});
      } else {
        targets.push_back(Target{text, std::nullopt, found.error().message});
      }
    }
  }
  // Several refs may name one image; it is checked once.
  std::map<std::string, std::vector<std::string>> by_manifest;
  std::vector<FsckReport> reports;
  for (auto& t : targets) {
    if (!t.ref) {
      reports.push_back(FsckReport{t.name, "", {t.error}});
      continue;
    }
    auto it = by_manifest.find(t.ref->manifest_digest);
    if (it == by_manifest.end()) {
      it = by_manifest.emplace(t.ref->manifest_digest, check_image(store, t.ref->manifest_digest)).first;
    }
    std::vector<std::string> problems = it->second;
    // An index blob belongs to the ref, not the shared manifest. Its size is
    // not recorded; the digest alone pins its bytes.
    if (t.ref->digest != t.ref->manifest_digest) {
      if (auto p = check_blob(store.blobs(), t.ref->digest, nullptr); !p.empty()) {
        problems.push_back(p);
      }
    }
    reports.push_back(FsckReport{t.name, t.ref->digest, std::move(problems)});
  }
  return reports;
}

}  // namespace moat::image
