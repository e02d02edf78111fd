#include "image/oci/blob_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "image/oci/digest.h"
#include "store/moat_home.h"
#include "util/fsync_path.h"
#include "util/write_all.h"

namespace moat::image {

struct BlobWriter::Hasher {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Hasher() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
  ~Hasher() { EVP_MD_CTX_free(ctx); }
  void update(const void* p, std::size_t n) { EVP_DigestUpdate(ctx, p, n); }
  std::string finish() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    return sha256_digest_of(md, len);
  }
};

namespace {

std::string_view hex_of(std::string_view digest) { return digest.substr(kSha256Prefix.size()); }

// Makes the rename itself durable, not only the file's contents (best
// effort).
void fsync_dir(const std::string& dir) { (void)fsync_path(dir); }

}  // namespace

Result<BlobStore> BlobStore::open(const std::string& root) {
  MOAT_TRY(store::make_dirs(root + "/sha256", 0755));
  MOAT_TRY(store::make_dirs(root + "/incoming", 0700));
  return BlobStore(root);
}

std::string BlobStore::path(std::string_view digest) const {
  return root_ + "/sha256/" + std::string(hex_of(digest));
}

bool BlobStore::has(std::string_view digest, std::uint64_t size) const {
  if (!is_valid_digest(digest)) return false;
  struct stat st {};
  return ::stat(path(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         static_cast<std::uint64_t>(st.st_size) == size;
}

Result<std::unique_ptr<BlobWriter>> BlobStore::begin(std::string_view digest,
                                                     std::uint64_t size) const {
  MOAT_TRY(validate_digest(digest));
  std::unique_ptr<BlobWriter> w(new BlobWriter());
  w->digest_ = std::string(digest);
  w->final_path_ = path(digest);
  w->size_ = size;
  w->hasher_ = std::make_unique<BlobWriter::Hasher>();

  std::string partial = root_ + "/incoming/" + std::string(hex_of(digest)) + ".partial";
  for (int tries = 0; tries < 3; ++tries) {
    UniqueFd fd(::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return errno_error("open " + partial);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) break;
    // The previous owner may have renamed this inode into the store between
    // our open and our lock; then the name now means a different file.
    struct stat by_fd {}, by_name {};
    if (::fstat(fd.get(), &by_fd) != 0) return errno_error("stat " + partial);
    if (::stat(partial.c_str(), &by_name) != 0 || by_fd.st_ino != by_name.st_ino ||
        by_fd.st_dev != by_name.st_dev) {
      continue;
    }
    w->temp_path_ = partial;
    w->keep_on_close_ = true;
    w->fd_ = std::move(fd);
    MOAT_TRY(w->hash_existing());
    return w;
  }
  // Another process is downloading this blob right now; download our own
  // copy rather than wait. Both copies are verified, and either rename wins.
  std::string temp = root_ + "/incoming/" + std::string(hex_of(digest)) + ".tmp-XXXXXX";
  int tfd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (tfd < 0) return errno_error("creating temporary blob file");
  w->temp_path_ = temp;
  w->fd_.reset(tfd);
  return w;
}

Status BlobStore::ingest_fd(int fd, std::string_view digest, std::uint64_t size) const {
  MOAT_ASSIGN_OR_RETURN(auto w, begin(digest, size));
  MOAT_TRY(w->restart());  // a stream is read from its start
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = errno_error("read blob " + std::string(digest));
      w->discard();
      return st;
    }
    if (n == 0) break;
    if (auto st = w->write(buf, static_cast<std::size_t>(n)); !st) {
      w->discard();
      return st;
    }
  }
  // A stream cannot be resumed, so a short one leaves nothing behind either.
  Status st = w->commit();
  if (!st) w->discard();
  return st;
}

Status BlobStore::ingest_bytes(std::string_view data, std::string_view digest) const {
  MOAT_ASSIGN_OR_RETURN(auto w, begin(digest, data.size()));
  MOAT_TRY(w->restart());
  MOAT_TRY(w->write(data.data(), data.size()));
  Status st = w->commit();
  if (!st) w->discard();
  return st;
}

Result<std::string> BlobStore::read_verified(std::string_view digest, std::size_t max_size) const {
  MOAT_TRY(validate_digest(digest));
  std::string p = path(digest);
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return errno_error("open blob " + std::string(digest));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("stat " + p);
  if (static_cast<std::uint64_t>(st.st_size) > max_size) {
    return make_error("blob " + std::string(digest) + " is larger than " +
                          std::to_string(max_size) + " bytes",
                      EFBIG);
  }
  std::string data(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < data.size()) {
    ssize_t n = ::read(fd.get(), data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error("read " + p, n == 0 ? EIO : errno);
    got += static_cast<std::size_t>(n);
  }
  if (sha256_digest(data) != digest) {
    return make_error("blob " + std::string(digest) + " on disk is corrupt (digest mismatch)",
                      EBADMSG);
  }
  return data;
}

Status BlobStore::remove(std::string_view digest) const {
  MOAT_TRY(validate_digest(digest));
  if (::unlink(path(digest).c_str()) != 0 && errno != ENOENT) {
    return errno_error("remove blob " + std::string(digest));
  }
  return ok_status();
}

BlobWriter::~BlobWriter() {
  if (!done_ && !keep_on_close_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

Status BlobWriter::hash_existing() {
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) return errno_error("stat " + temp_path_);
  std::uint64_t have = static_cast<std::uint64_t>(st.st_size);
  // A partial file longer than the blob cannot be a prefix of it.
  if (have > size_) return restart();
  char buf[1 << 16];
  std::uint64_t pos = 0;
  while (pos < have) {
    ssize_t n = ::pread(fd_.get(), buf, sizeof buf, static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return restart();
    hasher_->update(buf, static_cast<std::size_t>(n));
    pos += static_cast<std::uint64_t>(n);
  }
  offset_ = have;
  if (::lseek(fd_.get(), static_cast<off_t>(offset_), SEEK_SET) < 0) {
    return errno_error("seek " + temp_path_);
  }
  return ok_status();
}

Status BlobWriter::write(const void* data, std::size_t len) {
  if (done_) return make_error("blob writer already finished", EINVAL);
  if (len > size_ - offset_) {
    return make_error("blob " + digest_ + " is larger than the " + std::to_string(size_) +
                          " bytes its descriptor declares",
                      EFBIG);
  }
  MOAT_TRY(write_all(fd_.get(), std::string_view(static_cast<const char*>(data), len), "write " + temp_path_));
  hasher_->update(data, len);
  offset_ += len;
  return ok_status();
}

Status BlobWriter::restart() {
  if (::ftruncate(fd_.get(), 0) != 0) return errno_error("truncate " + temp_path_);
  if (::lseek(fd_.get(), 0, SEEK_SET) < 0) return errno_error("seek " + temp_path_);
  hasher_ = std::make_unique<Hasher>();
  offset_ = 0;
  return ok_status();
}

Status BlobWriter::commit() {
  if (done_) return make_error("blob writer already finished", EINVAL);
  if (offset_ != size_) {
    // Short data: keep a .partial for a resume, but never publish it.
    return make_error("blob " + digest_ + " is truncated: got " + std::to_string(offset_) +
                          " of " + std::to_string(size_) + " bytes",
                      EIO);
  }
  std::string got = hasher_->finish();
  if (got != digest_) {
    discard();
    return make_error("digest mismatch: expected " + digest_ + ", got " + got, EBADMSG);
  }
  // Blobs are shared read-only data; mkostemp and the partial file are 0600.
  if (::fchmod(fd_.get(), 0644) != 0) return errno_error("chmod " + temp_path_);
  if (::fsync(fd_.get()) != 0) return errno_error("fsync " + temp_path_);
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    return errno_error("rename to " + final_path_);
  }
  done_ = true;
  fsync_dir(final_path_.substr(0, final_path_.rfind('/')));
  return ok_status();
}

void BlobWriter::discard() {
  if (!done_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
  done_ = true;
}

}  // namespace moat::image
