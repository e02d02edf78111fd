// Spool: an unnamed temporary file holding regular-file contents while a tree
// is built, so memory use does not grow with image size.
//
// Each file's contents start on a 4 KiB boundary and all-zero blocks are
// skipped rather than written, so sparse layer files stay sparse on the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "image/erofs/fs_tree.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::image {

class Spool {
 public:
  // Creates the spool in `dir` (O_TMPFILE: nothing is left behind if the
  // process dies). Falls back to an unlinked named file where O_TMPFILE is not
  // supported.
  static Result<Spool> create(const std::string& dir);

  // Starts a new file's contents; follow with append() calls, then finish().
  void begin();
  Status append(const void* data, std::size_t size);
  Result<ContentRef> finish();

  // Convenience for tests and small contents.
  Result<ContentRef> add(std::string_view data);

  // Reads exactly `size` bytes at `offset`.
  Status read(std::uint64_t offset, void* out, std::size_t size) const;

  int fd() const { return fd_.get(); }
  std::uint64_t end() const { return end_; }

 private:
  explicit Spool(UniqueFd fd) : fd_(std::move(fd)) {}
  Status write_block(const char* data, std::size_t size);

  UniqueFd fd_;
  std::uint64_t end_ = 0;        // logical end of data written so far
  std::uint64_t start_ = 0;      // start of the file being appended
  std::string pending_;          // partial block not yet written
};

}  // namespace moat::image
