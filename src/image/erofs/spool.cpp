#include "image/erofs/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdlib>

#include "util/zero_block.h"

namespace moat::image {
namespace {

constexpr std::size_t kBlock = 4096;

}  // namespace

Result<Spool> Spool::create(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == ENOENT)) {
    std::string templ = dir + "/.moat-spool-XXXXXX";
    fd = ::mkostemp(templ.data(), O_CLOEXEC);
    if (fd >= 0) ::unlink(templ.c_str());
  }
  if (fd < 0) return errno_error("creating spool file in " + dir);
  return Spool(UniqueFd(fd));
}

void Spool::begin() {
  start_ = (end_ + kBlock - 1) / kBlock * kBlock;
  end_ = start_;
  pending_.clear();
}

Status Spool::write_block(const char* data, std::size_t size) {
  // Zero blocks become holes: the file is extended by ftruncate in finish().
  if (!all_zero(data, size)) {
    std::size_t done = 0;
    while (done < size) {
      ssize_t n = ::pwrite(fd_.get(), data + done, size - done,
                           static_cast<off_t>(end_ + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("writing spool file");
      }
      done += static_cast<std::size_t>(n);
    }
  }
  end_ += size;
  return ok_status();
}

Status Spool::append(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  // Fill the pending partial block first, then write whole blocks directly.
  if (!pending_.empty()) {
    std::size_t take = std::min(size, kBlock - pending_.size());
    pending_.append(p, take);
    p += take;
    size -= take;
    if (pending_.size() < kBlock) return ok_status();
    MOAT_TRY(write_block(pending_.data(), kBlock));
    pending_.clear();
  }
  while (size >= kBlock) {
    std::size_t whole = std::min<std::size_t>(size / kBlock * kBlock, 64 * kBlock);
    for (std::size_t off = 0; off < whole; off += kBlock) MOAT_TRY(write_block(p + off, kBlock));
    p += whole;
    size -= whole;
  }
  pending_.append(p, size);
  return ok_status();
}

Result<ContentRef> Spool::finish() {
  // A short tail is always written, even if zero, so the file gets its length.
  if (!pending_.empty()) {
    std::size_t n = pending_.size();
    ssize_t w = ::pwrite(fd_.get(), pending_.data(), n, static_cast<off_t>(end_));
    if (w != static_cast<ssize_t>(n)) return errno_error("writing spool file");
    end_ += n;
    pending_.clear();
  }
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) return errno_error("stat of spool file");
  if (static_cast<std::uint64_t>(st.st_size) < end_ &&
      ::ftruncate(fd_.get(), static_cast<off_t>(end_)) != 0) {
    return errno_error("extending spool file");
  }
  return ContentRef{start_, end_ - start_};
}

Result<ContentRef> Spool::add(std::string_view data) {
  begin();
  MOAT_TRY(append(data.data(), data.size()));
  return finish();
}

Status Spool::read(std::uint64_t offset, void* out, std::size_t size) const {
  char* p = static_cast<char*>(out);
  while (size > 0) {
    ssize_t n = ::pread(fd_.get(), p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("reading spool file");
    }
    if (n == 0) return make_error("spool file shorter than expected", EIO);
    p += n;
    offset += static_cast<std::uint64_t>(n);
    size -= static_cast<std::size_t>(n);
  }
  return ok_status();
}

}  // namespace moat::image
