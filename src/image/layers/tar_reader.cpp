#include "image/layers/tar_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace moat::image {
namespace {

constexpr std::size_t kPullSize = 256 * 1024;
constexpr std::int64_t kMaxId = 0xFFFFFFFE;  // (uint32_t)-1 means "no id"

std::string hex_digest(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

Result<FileType> entry_type(archive_entry* e) {
  switch (archive_entry_filetype(e)) {
    case AE_IFREG: return FileType::kRegular;
    case AE_IFDIR: return FileType::kDirectory;
    case AE_IFLNK: return FileType::kSymlink;
    case AE_IFCHR: return FileType::kCharDevice;
    case AE_IFBLK: return FileType::kBlockDevice;
    case AE_IFIFO: return FileType::kFifo;
    case AE_IFSOCK: return FileType::kSocket;
    default: return make_error("unsupported tar entry type", EINVAL);
  }
}

Status convert_ids(archive_entry* e, TarEntry& out) {
  std::int64_t uid = archive_entry_uid(e);
  std::int64_t gid = archive_entry_gid(e);
  if (uid < 0 || uid > kMaxId || gid < 0 || gid > kMaxId) {
    return make_error("uid/gid out of range", ERANGE);
  }
  out.uid = static_cast<std::uint32_t>(uid);
  out.gid = static_cast<std::uint32_t>(gid);
  long nsec = archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0;
  if (nsec < 0 || nsec >= 1000000000L) return make_error("mtime nanoseconds out of range", ERANGE);
  out.mtime = {archive_entry_mtime_is_set(e) ? static_cast<std::int64_t>(archive_entry_mtime(e)) : 0,
               static_cast<std::uint32_t>(nsec)};
  return ok_status();
}

Status convert_entry(archive_entry* e, TarEntry& out) {
  out = TarEntry{};
  const char* path = archive_entry_pathname(e);
  if (!path) return make_error("tar entry without a name", EINVAL);
  out.path = path;
  out.mode = static_cast<std::uint32_t>(archive_entry_perm(e)) & 07777;
  MOAT_TRY(convert_ids(e, out));
  if (const char* hardlink = archive_entry_hardlink(e)) {
    out.is_hardlink = true;
    out.link_target = hardlink;
    return ok_status();
  }
  MOAT_ASSIGN_OR_RETURN(out.type, entry_type(e));
  if (out.type == FileType::kSymlink) {
    const char* target = archive_entry_symlink(e);
    out.link_target = target ? target : "";
  }
  if (out.type == FileType::kRegular) {
    std::int64_t size = archive_entry_size(e);
    if (size < 0) return make_error("negative file size", EINVAL);
    out.size = static_cast<std::uint64_t>(size);
  }
  if (out.type == FileType::kCharDevice || out.type == FileType::kBlockDevice) {
    auto major = archive_entry_rdevmajor(e);
    auto minor = archive_entry_rdevminor(e);
    if (major > kMaxDevMajor || minor > kMaxDevMinor) {
      return make_error("device number out of range", ERANGE);
    }
    out.dev_major = static_cast<std::uint32_t>(major);
    out.dev_minor = static_cast<std::uint32_t>(minor);
  }
  archive_entry_xattr_reset(e);
  const char* name = nullptr;
  const void* value = nullptr;
  std::size_t size = 0;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (!name) continue;
    out.xattrs[name] = std::string(static_cast<const char*>(value), value ? size : 0);
  }
  return ok_status();
}

}  // namespace

// Decompressed bytes flow from `raw` to `tar` through pull(). With a
// producer thread (regular-file input only), decompression and hashing run
// concurrently with tar parsing through a small ring of buffers; otherwise
// pull() does the work inline. A buffer handed to libarchive stays valid
// until its next pull() call, which is when it is recycled.
struct TarReader::Impl {
  static constexpr std::size_t kSlots = 4;

  archive* raw = nullptr;  // decompression only ("raw" format)
  archive* tar = nullptr;  // tar parsing of raw's output
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  std::atomic<std::uint64_t> max_total{~std::uint64_t{0}};

  // Guarded by mu once the producer runs.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<char> slots[kSlots];
  std::size_t lengths[kSlots] = {};
  std::size_t head = 0;    // next filled slot to hand out
  std::size_t filled = 0;  // filled slots waiting
  bool held = false;       // libarchive holds slot head-1
  bool done = false;       // producer finished (EOF or error)
  bool stop = false;       // reader is being destroyed
  std::string raw_error;
  std::uint64_t total = 0;
  std::thread producer;

  Impl() {
    for (auto& slot : slots) slot.resize(kPullSize);
  }

  ~Impl() {
    if (producer.joinable()) {
      {
        std::lock_guard lock(mu);
        stop = true;
      }
      cv.notify_all();
      producer.join();
    }
    if (tar) archive_read_free(tar);
    if (raw) archive_read_free(raw);
    EVP_MD_CTX_free(sha);
  }

  // Reads one chunk from the decompressor into `buf`, hashing it: the
  // length, 0 at the end, -1 on error (raw_error set).
  la_ssize_t produce(char* buf, std::string& error) {
    la_ssize_t n = archive_read_data(raw, buf, kPullSize);
    if (n < 0) {
      const char* msg = archive_error_string(raw);
      error = msg ? msg : "decompression failed";
      return -1;
    }
    if (n == 0) return 0;
    total += static_cast<std::uint64_t>(n);
    if (total > max_total.load()) {
      error = "uncompressed layer exceeds the size limit";
      return -1;
    }
    EVP_DigestUpdate(sha, buf, static_cast<std::size_t>(n));
    return n;
  }

  void run_producer() {
    std::size_t tail = 0;
    while (true) {
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stop || filled + held < kSlots; });
        if (stop) return;
        tail = (head + filled) % kSlots;
      }
      std::string error;
      la_ssize_t n = produce(slots[tail].data(), error);
      std::lock_guard lock(mu);
      if (n <= 0) {
        raw_error = error;
        done = true;
        cv.notify_all();
        return;
      }
      lengths[tail] = static_cast<std::size_t>(n);
      ++filled;
      cv.notify_all();
    }
  }

  la_ssize_t pull_async(const void** out) {
    std::unique_lock lock(mu);
    if (held) {
      held = false;
      cv.notify_all();
    }
    cv.wait(lock, [&] { return filled > 0 || done; });
    if (filled == 0) return raw_error.empty() ? 0 : -1;
    std::size_t slot = head;
    head = (head + 1) % kSlots;
    --filled;
    held = true;
    *out = slots[slot].data();
    return static_cast<la_ssize_t>(lengths[slot]);
  }

  la_ssize_t pull_sync(const void** out) {
    if (done) return raw_error.empty() ? 0 : -1;
    la_ssize_t n = produce(slots[0].data(), raw_error);
    if (n <= 0) {
      done = true;
      return n;
    }
    *out = slots[0].data();
    return n;
  }

  // Feeds the tar parser (libarchive read callback).
  static la_ssize_t pull(archive*, void* client, const void** out) {
    auto* self = static_cast<Impl*>(client);
    return self->producer.joinable() ? self->pull_async(out) : self->pull_sync(out);
  }

  // After the stream is drained: the producer has finished.
  void join() {
    if (producer.joinable()) producer.join();
  }

  std::string error_text() {
    std::lock_guard lock(mu);
    return raw_error;
  }
};

TarReader::TarReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TarReader::~TarReader() = default;

Error TarReader::error(const char* what) const {
  std::string raw_error = impl_->error_text();
  if (!raw_error.empty()) return make_error(std::string(what) + ": " + raw_error, EIO);
  const char* msg = impl_->tar ? archive_error_string(impl_->tar) : nullptr;
  if (!msg && impl_->raw) msg = archive_error_string(impl_->raw);
  return make_error(std::string(what) + ": " + (msg ? msg : "unknown error"), EIO);
}

// Called with impl_->raw opened: prepares both readers.
Status TarReader::open(bool background) {
  if (!impl_->sha || EVP_DigestInit_ex(impl_->sha, EVP_sha256(), nullptr) != 1) {
    return make_error("sha256 unavailable", ENOMEM);
  }
  archive_entry* entry = nullptr;
  int r = archive_read_next_header(impl_->raw, &entry);
  if (r == ARCHIVE_EOF) {
    impl_->done = true;
  } else if (r < ARCHIVE_WARN) {
    return error("reading layer");
  } else if (background) {
    impl_->producer = std::thread([impl = impl_.get()] { impl->run_producer(); });
  }
  impl_->tar = archive_read_new();
  if (!impl_->tar) return make_error("out of memory", ENOMEM);
  // Only tar (ustar, pax, GNU); nested compression is not a layer format.
  archive_read_support_format_tar(impl_->tar);
  archive_read_support_format_gnutar(impl_->tar);
  if (archive_read_open(impl_->tar, impl_.get(), nullptr, &Impl::pull, nullptr) != ARCHIVE_OK) {
    return error("reading layer tar");
  }
  return ok_status();
}

namespace {

Result<archive*> new_decompressor() {
  archive* a = archive_read_new();
  if (!a) return make_error("out of memory", ENOMEM);
  // Built-in decoders only: ARCHIVE_WARN would mean an external program.
  if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
      archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
      archive_read_support_filter_xz(a) != ARCHIVE_OK) {
    archive_read_free(a);
    return make_error("libarchive lacks built-in gzip/zstd/xz support", ENOTSUP);
  }
  archive_read_support_format_raw(a);
  return a;
}

}  // namespace

Result<std::unique_ptr<TarReader>> TarReader::open_fd(int fd) {
  auto impl = std::make_unique<Impl>();
  MOAT_ASSIGN_OR_RETURN(impl->raw, new_decompressor());
  std::unique_ptr<TarReader> reader(new TarReader(std::move(impl)));
  if (archive_read_open_fd(reader->impl_->raw, fd, kPullSize) != ARCHIVE_OK) {
    return reader->error("opening layer");
  }
  // Decompress in the background only where reads cannot block forever: a
  // pipe's writer might never close it, and the reader's destructor would
  // wait for the producer.
  struct stat st {};
  MOAT_TRY(reader->open(::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)));
  return reader;
}

Result<std::unique_ptr<TarReader>> TarReader::open_memory(const void* data, std::size_t size) {
  auto impl = std::make_unique<Impl>();
  MOAT_ASSIGN_OR_RETURN(impl->raw, new_decompressor());
  std::unique_ptr<TarReader> reader(new TarReader(std::move(impl)));
  if (archive_read_open_memory(reader->impl_->raw, data, size) != ARCHIVE_OK) {
    return reader->error("opening layer");
  }
  MOAT_TRY(reader->open(false));
  return reader;
}

Status TarReader::finish_stream() {
  // The diff_id covers everything after the end-of-archive blocks too.
  const void* ignored = nullptr;
  while (true) {
    la_ssize_t n = Impl::pull(nullptr, impl_.get(), &ignored);
    if (n < 0) return error("reading layer");
    if (n == 0) break;
  }
  impl_->join();
  uncompressed_size_ = impl_->total;
  diff_id_ = hex_digest(impl_->sha);
  return ok_status();
}

Result<bool> TarReader::next(TarEntry& entry) {
  archive_entry* e = nullptr;
  int r = archive_read_next_header(impl_->tar, &e);
  if (r == ARCHIVE_EOF) {
    MOAT_TRY(finish_stream());
    return false;
  }
  // ARCHIVE_WARN covers names that are not valid in the current locale;
  // libarchive then keeps the raw bytes, which is what we want.
  if (r < ARCHIVE_WARN) return error("reading layer tar");
  if (auto st = convert_entry(e, entry); !st.ok()) {
    const char* path = archive_entry_pathname(e);
    return st.error().wrap(std::string("tar entry '") + (path ? path : "") + "'");
  }
  return true;
}

void TarReader::set_max_uncompressed(std::uint64_t bytes) { impl_->max_total.store(bytes); }

Result<std::size_t> TarReader::read(void* buf, std::size_t size) {
  la_ssize_t n = archive_read_data(impl_->tar, buf, size);
  if (n < 0) return error("reading layer tar");
  return static_cast<std::size_t>(n);
}

}  // namespace moat::image
