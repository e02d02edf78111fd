#include "sandbox/layer_sink.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "image/oci/digest.h"
#include "util/unique_fd.h"
#include "util/write_all.h"

namespace moat::sandbox {

struct LayerSink::State {
  UniqueFd fd;
  z_stream z{};
  bool z_open = false;
  EVP_MD_CTX* tar_md = nullptr;
  EVP_MD_CTX* gz_md = nullptr;
  std::vector<unsigned char> out = std::vector<unsigned char>(1 << 16);
  ~State() {
    if (z_open) deflateEnd(&z);
    EVP_MD_CTX_free(tar_md);
    EVP_MD_CTX_free(gz_md);
  }
};

namespace {

std::string hex_digest(EVP_MD_CTX* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(md, out, &len);
  return image::sha256_digest_of(out, len);
}

}  // namespace

LayerSink::LayerSink(std::unique_ptr<State> s) : s_(std::move(s)) {}
LayerSink::~LayerSink() = default;

Result<std::unique_ptr<LayerSink>> LayerSink::create(const std::string& path) {
  auto s = std::make_unique<State>();
  s->fd.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!s->fd) return errno_error("create " + path);
  // windowBits 15 + 16: a gzip header and trailer, as image layers have.
  if (deflateInit2(&s->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return make_error("zlib: deflateInit2 failed", ENOMEM);
  s->z_open = true;
  s->tar_md = EVP_MD_CTX_new();
  s->gz_md = EVP_MD_CTX_new();
  if (!s->tar_md || !s->gz_md || EVP_DigestInit_ex(s->tar_md, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestInit_ex(s->gz_md, EVP_sha256(), nullptr) != 1)
    return make_error("sha256 unavailable", EIO);
  return std::unique_ptr<LayerSink>(new LayerSink(std::move(s)));
}

Status LayerSink::deflate_some(int flush) {
  while (true) {
    s_->z.next_out = s_->out.data();
    s_->z.avail_out = static_cast<uInt>(s_->out.size());
    int rc = deflate(&s_->z, flush);
    if (rc == Z_STREAM_ERROR) return make_error("zlib: deflate failed", EIO);
    std::size_t have = s_->out.size() - s_->z.avail_out;
    if (have > 0) {
      EVP_DigestUpdate(s_->gz_md, s_->out.data(), have);
      MOAT_TRY(write_all(s_->fd.get(), std::string_view(reinterpret_cast<const char*>(s_->out.data()), have),
                         "write the layer"));
      size_ += have;
    }
    if (flush == Z_FINISH ? rc == Z_STREAM_END : s_->z.avail_out != 0) return ok_status();
  }
}

Status LayerSink::write(std::string_view tar_bytes) {
  EVP_DigestUpdate(s_->tar_md, tar_bytes.data(), tar_bytes.size());
  s_->z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(tar_bytes.data()));
  s_->z.avail_in = static_cast<uInt>(tar_bytes.size());
  return deflate_some(Z_NO_FLUSH);
}

Status LayerSink::finish() {
  s_->z.next_in = nullptr;
  s_->z.avail_in = 0;
  MOAT_TRY(deflate_some(Z_FINISH));
  if (::fsync(s_->fd.get()) != 0) return errno_error("sync the layer");
  diff_id_ = hex_digest(s_->tar_md);
  digest_ = hex_digest(s_->gz_md);
  return ok_status();
}

}  // namespace moat::sandbox
