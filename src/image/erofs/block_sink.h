// BlockSink: buffered sequential writer for building an image file.
//
// Whole 4 KiB blocks of zeros are skipped instead of written and the file is
// extended with ftruncate at the end, so padding and zero-filled file data
// become holes: a sparse input never inflates the image on the host disk.
// The target must start empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat::image {

class BlockSink {
 public:
  explicit BlockSink(int fd) : fd_(fd) { buf_.reserve(kBufferSize); }

  Status write(std::string_view bytes);
  Status write(const void* data, std::size_t size) {
    return write(std::string_view(static_cast<const char*>(data), size));
  }
  // Appends `size` bytes of `src_fd` starting at `src_offset`. The copy runs
  // in the kernel (copy_file_range; a reflink where the filesystem can), and
  // holes in the source stay holes.
  Status copy_from(int src_fd, std::uint64_t src_offset, std::uint64_t size);
  // Writes zeros up to `offset`, which must not be behind the current offset.
  Status pad_to(std::uint64_t offset);
  // Flushes and gives the file its final length.
  Status finish();

  std::uint64_t offset() const { return flushed_ + buf_.size(); }

 private:
  static constexpr std::size_t kBufferSize = 1 << 20;
  Status flush();
  Status write_at(const char* data, std::size_t size, std::uint64_t at);
  Status copy_range(int src_fd, std::uint64_t src_offset, std::uint64_t size,
                    std::uint64_t at);
  Status copy_by_reading(int src_fd, std::uint64_t src_offset, std::uint64_t size,
                         std::uint64_t at);

  int fd_;
  std::string buf_;
  std::uint64_t flushed_ = 0;  // file offset of buf_[0]
  bool kernel_copy_ = true;    // cleared when copy_file_range is unsupported
};

}  // namespace moat::image
