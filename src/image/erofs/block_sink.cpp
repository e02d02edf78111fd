#include "image/erofs/block_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/positional_io.h"
#include "util/zero_block.h"

namespace moat::image {
namespace {

constexpr std::size_t kBlock = 4096;

}  // namespace

Status BlockSink::write_at(const char* data, std::size_t size, std::uint64_t at) {
  return pwrite_fully(fd_, data, size, static_cast<off_t>(at), "writing image");
}

Status BlockSink::flush() {
  // buf_ always starts block-aligned: flushes happen only at block multiples,
  // except the final one in finish().
  std::size_t pos = 0;
  while (pos < buf_.size()) {
    // Coalesce a run of non-zero blocks into one write.
    std::size_t run = pos;
    while (run < buf_.size()) {
      std::size_t n = std::min(kBlock, buf_.size() - run);
      if (all_zero(buf_.data() + run, n)) break;
      run += n;
    }
    if (run > pos) MOAT_TRY(write_at(buf_.data() + pos, run - pos, flushed_ + pos));
    pos = run;
    while (pos < buf_.size()) {
      std::size_t n = std::min(kBlock, buf_.size() - pos);
      if (!all_zero(buf_.data() + pos, n)) break;
      pos += n;
    }
  }
  flushed_ += buf_.size();
  buf_.clear();
  return ok_status();
}

Status BlockSink::write(std::string_view bytes) {
  while (!bytes.empty()) {
    std::size_t take = std::min(bytes.size(), kBufferSize - buf_.size());
    buf_.append(bytes.data(), take);
    bytes.remove_prefix(take);
    if (buf_.size() == kBufferSize) MOAT_TRY(flush());
  }
  return ok_status();
}

Status BlockSink::pad_to(std::uint64_t offset) {
  if (offset < this->offset()) return make_error("image writer moved backwards", EINVAL);
  // Large gaps are skipped without building zeros in memory.
  std::uint64_t gap = offset - this->offset();
  if (gap > kBufferSize) {
    MOAT_TRY(flush());
    std::uint64_t aligned = offset / kBlock * kBlock;
    flushed_ = aligned;
    gap = offset - aligned;
  }
  buf_.append(static_cast<std::size_t>(gap), '\0');
  if (buf_.size() >= kBufferSize) MOAT_TRY(flush());
  return ok_status();
}

Status BlockSink::copy_by_reading(int src_fd, std::uint64_t src_offset, std::uint64_t size,
                                  std::uint64_t at) {
  std::string chunk(std::min<std::uint64_t>(size, kBufferSize), '\0');
  while (size > 0) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(size, chunk.size()));
    ssize_t n = ::pread(src_fd, chunk.data(), want, static_cast<off_t>(src_offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("reading image contents");
    if (n == 0) return make_error("image contents shorter than expected", EIO);
    // Zero blocks stay holes here too.
    for (std::size_t off = 0; off < static_cast<std::size_t>(n); off += kBlock) {
      std::size_t len = std::min(kBlock, static_cast<std::size_t>(n) - off);
      if (!all_zero(chunk.data() + off, len)) MOAT_TRY(write_at(chunk.data() + off, len, at + off));
    }
    src_offset += static_cast<std::uint64_t>(n);
    at += static_cast<std::uint64_t>(n);
    size -= static_cast<std::uint64_t>(n);
  }
  return ok_status();
}

Status BlockSink::copy_range(int src_fd, std::uint64_t src_offset, std::uint64_t size,
                             std::uint64_t at) {
  while (size > 0 && kernel_copy_) {
    loff_t in = static_cast<loff_t>(src_offset);
    loff_t out = static_cast<loff_t>(at);
    ssize_t n = ::copy_file_range(src_fd, &in, fd_, &out, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
      kernel_copy_ = false;
      break;
    }
    if (n < 0) return errno_error("copying image contents");
    if (n == 0) return make_error("image contents shorter than expected", EIO);
    src_offset += static_cast<std::uint64_t>(n);
    at += static_cast<std::uint64_t>(n);
    size -= static_cast<std::uint64_t>(n);
  }
  return size ? copy_by_reading(src_fd, src_offset, size, at) : ok_status();
}

Status BlockSink::copy_from(int src_fd, std::uint64_t src_offset, std::uint64_t size) {
  MOAT_TRY(flush());
  std::uint64_t at = flushed_;
  std::uint64_t end = src_offset + size;
  std::uint64_t pos = src_offset;
  // Copy only the data extents of the source; its holes are left unwritten.
  while (pos < end) {
    off_t data = ::lseek(src_fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole remains
    if (data < 0) {
      MOAT_TRY(copy_range(src_fd, pos, end - pos, at + (pos - src_offset)));
      break;
    }
    if (static_cast<std::uint64_t>(data) >= end) break;
    off_t hole = ::lseek(src_fd, data, SEEK_HOLE);
    std::uint64_t stop = hole < 0 ? end : std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), end);
    std::uint64_t from = static_cast<std::uint64_t>(data);
    MOAT_TRY(copy_range(src_fd, from, stop - from, at + (from - src_offset)));
    pos = stop;
  }
  flushed_ += size;
  return ok_status();
}

Status BlockSink::finish() {
  std::uint64_t end = offset();
  MOAT_TRY(flush());
  if (::ftruncate(fd_, static_cast<off_t>(end)) != 0) return errno_error("sizing image");
  return ok_status();
}

}  // namespace moat::image
