// Frames on their way to the host: one buffer the agent's loop drains into
// the channel whenever it takes more.
//
// Exec output and file data are read straight into data frames here
// (proto/data_frame.h): the emulated guest pays for every copy of a byte and
// for every page a fresh allocation faults in, so the buffer is allocated
// once, grows geometrically, is drained from an offset rather than by
// erasing its front, and is compacted only when what is left is small.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "proto/message.h"
#include "util/result.h"

namespace moat::agent {

class Outbox {
 public:
  // Appends the frame of `m`.
  void send(const proto::Message& m);

  // Fills one data frame in place: `fill(dst, max)` writes at most `max`
  // bytes to `dst` and returns how many. A frame is queued only when that is
  // more than zero; on zero or an error nothing is. `max` is at most
  // proto::kMaxDataChunk.
  using Filler = std::function<Result<std::size_t>(char* dst, std::size_t max)>;
  Result<std::size_t> fill_data(std::uint32_t stream, std::string_view type, std::size_t max, const Filler& fill);
  // fill_data with read(2) on `fd`: returns read's result (-1 with errno set
  // on failure, 0 at end of file).
  ssize_t read_data(int fd, std::uint32_t stream, std::string_view type, std::size_t max);

  // Writes what `fd` takes without blocking. Returns false on a write error
  // other than EAGAIN/EINTR (the bytes stay queued).
  bool flush(int fd);

  std::size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }

 private:
  // Room for `n` more bytes at end_, compacting or growing as needed.
  char* reserve(std::size_t n);

  std::unique_ptr<char[]> buf_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;  // first byte not yet written to the channel
  std::size_t end_ = 0;    // one past the last queued byte
};

}  // namespace moat::agent
