#include "sandbox/host_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <vector>

#include "tree/tree_writer.h"
#include "util/unique_fd.h"

namespace moat::sandbox {
namespace {

constexpr std::size_t kChunk = 64 * 1024;
// Both the archiver and the extractor stop at this depth below the top.
constexpr int kMaxDepth = 1024;
// An extracted entry's name, relative to the destination, fits in PATH_MAX.
constexpr std::size_t kMaxExtractPath = PATH_MAX - 1;
// What a guest's mode may set on the host: no setuid, setgid or sticky bit,
// and no write permission for group or others (the guest is not trusted, and
// its 0777 or 1777 must not open host files to the host's other users).
constexpr std::uint32_t kHostModeMask = 0755;
constexpr std::size_t kMaxTrackedLinks = 100000;

using WriteArchive = std::unique_ptr<archive, decltype(&archive_write_free)>;
using ReadArchive = std::unique_ptr<archive, decltype(&archive_read_free)>;
using Entry = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;

// ---- writing ----

struct WriteCtx {
  const ChunkSink* sink = nullptr;
  std::optional<Error> error;
};

la_ssize_t write_cb(archive*, void* ud, const void* buf, size_t n) {
  auto* ctx = static_cast<WriteCtx*>(ud);
  auto st = (*ctx->sink)(std::string_view(static_cast<const char*>(buf), n));
  if (!st) {
    ctx->error = st.error();
    return -1;
  }
  return static_cast<la_ssize_t>(n);
}

class TarBuilder {
 public:
  TarBuilder(archive* a, WriteCtx& ctx, const HostTarOptions& opt) : a_(a), ctx_(ctx), opt_(opt) {}

  Status add(const std::string& path, const std::string& name, int depth) {
    if (depth > kMaxDepth) return make_error(path + ": directory tree too deep", ELOOP);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return errno_error(path);
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode) && !S_ISFIFO(st.st_mode))
      return ok_status();  // devices and sockets are not copied
    Entry e(archive_entry_new(), archive_entry_free);
    archive_entry_copy_pathname(e.get(), name.c_str());
    archive_entry_set_mode(e.get(), st.st_mode);
    archive_entry_set_uid(e.get(), opt_.preserve_owner ? st.st_uid : 0);
    archive_entry_set_gid(e.get(), opt_.preserve_owner ? st.st_gid : 0);
    archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, 0);
    UniqueFd file;
    if (S_ISLNK(st.st_mode)) {
      std::string target(4096, '\0');
      ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
      if (n < 0) return errno_error(path);
      target.resize(static_cast<std::size_t>(n));
      archive_entry_copy_symlink(e.get(), target.c_str());
    } else if (S_ISREG(st.st_mode)) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto it = st.st_nlink > 1 ? links_.find(key) : links_.end();
      if (it != links_.end()) {
        archive_entry_copy_hardlink(e.get(), it->second.c_str());
        archive_entry_set_size(e.get(), 0);
      } else {
        file.reset(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!file) return errno_error(path);
        archive_entry_set_size(e.get(), st.st_size);
        if (st.st_nlink > 1 && links_.size() < kMaxTrackedLinks) links_[key] = name;
      }
    }
    if (archive_write_header(a_, e.get()) != ARCHIVE_OK) return archive_failure(path);
    if (file) MOAT_TRY(copy_data(file.get(), static_cast<std::uint64_t>(st.st_size), path));
    ++totals_.entries;
    if (S_ISDIR(st.st_mode)) MOAT_TRY(add_children(path, name, depth));
    return ok_status();
  }

  const TarTotals& totals() const { return totals_; }

  Error archive_failure(const std::string& what) {
    if (ctx_.error) return *ctx_.error;
    const char* msg = archive_error_string(a_);
    return make_error(what + ": " + (msg ? msg : "archive error"), EIO);
  }

 private:
  Status add_children(const std::string& path, const std::string& name, int depth) {
    DIR* d = ::opendir(path.c_str());
    if (!d) return errno_error(path);
    std::vector<std::string> names;
    while (struct dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) MOAT_TRY(add(path + "/" + n, name + "/" + n, depth + 1));
    return ok_status();
  }

  Status copy_data(int fd, std::uint64_t size, const std::string& path) {
    std::string buf(kChunk, '\0');
    while (size > 0) {
      ssize_t n = ::read(fd, buf.data(), std::min<std::uint64_t>(size, kChunk));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error(path);
      if (n == 0) break;  // the file shrank: libarchive pads the entry with zeros
      if (archive_write_data(a_, buf.data(), static_cast<std::size_t>(n)) < 0) return archive_failure(path);
      size -= static_cast<std::uint64_t>(n);
      totals_.bytes += static_cast<std::uint64_t>(n);
    }
    return ok_status();
  }

  archive* a_;
  WriteCtx& ctx_;
  const HostTarOptions& opt_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  TarTotals totals_;
};

// ---- reading ----

struct ReadCtx {
  const ChunkSource* source = nullptr;
  std::string buf;
  std::optional<Error> error;
};

la_ssize_t read_cb(archive*, void* ud, const void** out) {
  auto* ctx = static_cast<ReadCtx*>(ud);
  auto next = (*ctx->source)();
  if (!next) {
    ctx->error = next.error();
    return -1;
  }
  if (!*next) return 0;
  ctx->buf = std::move(**next);
  *out = ctx->buf.data();
  return static_cast<la_ssize_t>(ctx->buf.size());
}

Error read_failure(archive* a, const ReadCtx& ctx) {
  if (ctx.error) return *ctx.error;
  const char* msg = archive_error_string(a);
  return make_error(std::string("archive from the sandbox: ") + (msg ? msg : "unreadable"), EIO);
}

}  // namespace

Result<TarTotals> write_host_tar(const std::string& host_path, const std::string& top_name,
                                 const HostTarOptions& options, const ChunkSink& sink) {
  // Declared before the archive so it outlives it: freeing an archive that
  // was not closed (an early return) flushes its last block through
  // write_cb, which still writes into `ctx`.
  WriteCtx ctx{&sink, std::nullopt};
  WriteArchive a(archive_write_new(), archive_write_free);
  if (!a) return make_error("libarchive: out of memory", ENOMEM);
  archive_write_set_format_pax_restricted(a.get());
  // Names are bytes: without this, libarchive converts them from the
  // locale's charset to UTF-8 and refuses a name that is not valid there.
  if (archive_write_set_format_option(a.get(), "pax", "hdrcharset", "BINARY") != ARCHIVE_OK)
    return make_error(std::string("libarchive: ") + archive_error_string(a.get()), EIO);
  archive_write_set_bytes_per_block(a.get(), static_cast<int>(kChunk));
  archive_write_set_bytes_in_last_block(a.get(), 1);
  TarBuilder builder(a.get(), ctx, options);
  if (archive_write_open(a.get(), &ctx, nullptr, write_cb, nullptr) != ARCHIVE_OK)
    return builder.archive_failure("start archive");
  MOAT_TRY(builder.add(host_path, top_name, 0));
  if (archive_write_close(a.get()) != ARCHIVE_OK) return builder.archive_failure("finish archive");
  return builder.totals();
}

namespace {

// The writer's view of an archive entry; nullopt for devices and sockets,
// which are not created on the host.
std::optional<agent::TreeEntry> tree_entry_of(archive_entry* e, const char* path) {
  agent::TreeEntry te;
  te.path = path;
  te.mode = archive_entry_perm(e);
  te.uid = static_cast<std::uint32_t>(archive_entry_uid(e));
  te.gid = static_cast<std::uint32_t>(archive_entry_gid(e));
  te.mtime_sec = archive_entry_mtime(e);
  if (const char* link = archive_entry_hardlink(e)) {
    te.hardlink = true;
    te.link = link;
    return te;
  }
  switch (archive_entry_filetype(e)) {
    case AE_IFREG:
      te.type = proto::FileType::kFile;
      te.size = static_cast<std::uint64_t>(std::max<la_int64_t>(archive_entry_size(e), 0));
      return te;
    case AE_IFDIR: te.type = proto::FileType::kDir; return te;
    case AE_IFLNK:
      te.type = proto::FileType::kSymlink;
      te.link = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
      return te;
    case AE_IFIFO: te.type = proto::FileType::kFifo; return te;
    default: return std::nullopt;
  }
}

// The writer's errors name the entry; this says which side of the copy failed.
Error on_host(const Error& e) { return e.wrap("copying from the sandbox"); }

Status copy_entry_data(archive* a, const ReadCtx& ctx, agent::TreeWriter& writer, const std::string& path) {
  std::string buf(kChunk, '\0');
  while (true) {
    la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
    if (n < 0) return read_failure(a, ctx);
    if (n == 0) break;
    auto st = writer.write(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    if (!st) return on_host(st.error());
  }
  if (writer.in_file()) return make_error("archive from the sandbox: " + path + " is truncated", EIO);
  return ok_status();
}

// The archive's end marker may come before the stream's end, and the agent
// reports a failure (a file it could not read) at the stream's end: the copy
// is complete only once the stream has ended without an error.
Status read_to_end(const ReadCtx& ctx) {
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto chunk, (*ctx.source)());
    if (!chunk) return ok_status();
  }
}

Status extract_entries(archive* a, const ReadCtx& ctx, agent::TreeWriter& writer) {
  while (true) {
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(a, &e);
    if (rc == ARCHIVE_EOF) break;
    // ARCHIVE_RETRY (a damaged header libarchive would skip) is an error too.
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) return read_failure(a, ctx);
    const char* path = archive_entry_pathname(e);
    if (!path) return make_error("archive from the sandbox: an entry has no name", EINVAL);
    auto te = tree_entry_of(e, path);
    if (!te) continue;
    auto st = writer.begin(*te);
    if (!st) return on_host(st.error());
    if (!te->hardlink && te->type == proto::FileType::kFile) MOAT_TRY(copy_entry_data(a, ctx, writer, te->path));
  }
  MOAT_TRY(read_to_end(ctx));
  auto st = writer.finish();
  if (!st) return on_host(st.error());
  return ok_status();
}

}  // namespace

Result<TarTotals> extract_host_tar(const std::string& dest_dir, const std::string& top_name,
                                   const HostTarOptions& options, const ChunkSource& source) {
  UniqueFd dir(::open(dest_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return errno_error(dest_dir);
  agent::TreeWriterOptions wopt;
  wopt.chown = options.preserve_owner;
  wopt.mode_mask = kHostModeMask;
  wopt.required_top = top_name;
  wopt.max_depth = kMaxDepth;
  wopt.max_path_bytes = kMaxExtractPath;
  wopt.transactional = true;
  agent::TreeWriter writer(dir.get(), wopt);

  ReadArchive a(archive_read_new(), archive_read_free);
  if (!a) return make_error("libarchive: out of memory", ENOMEM);
  archive_read_support_format_tar(a.get());
  archive_read_support_filter_none(a.get());
  ReadCtx ctx{&source, {}, std::nullopt};
  Status st = archive_read_open(a.get(), &ctx, nullptr, read_cb, nullptr) == ARCHIVE_OK
                  ? extract_entries(a.get(), ctx, writer)
                  : Status(read_failure(a.get(), ctx));
  if (!st) {
    // Whatever failed, the host is left as it was before the copy.
    Error err = st.error();
    auto undone = writer.abort();
    if (!undone) err.message += "; undoing the partial copy failed too: " + undone.error().message;
    return err;
  }
  return TarTotals{writer.entries(), writer.bytes()};
}

}  // namespace moat::sandbox
