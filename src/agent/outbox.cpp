#include "agent/outbox.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "proto/data_frame.h"

namespace moat::agent {
namespace {

constexpr std::size_t kInitialCapacity = 256 * 1024;
// Moving what is left to the front is worth it only when little is left.
constexpr std::size_t kCompactBelow = 64 * 1024;

}  // namespace

char* Outbox::reserve(std::size_t n) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (capacity_ - end_ >= n) return buf_.get() + end_;
  std::size_t used = end_ - begin_;
  if (used <= kCompactBelow && capacity_ - used >= n) {
    std::memmove(buf_.get(), buf_.get() + begin_, used);
  } else {
    std::size_t cap = capacity_ ? capacity_ : kInitialCapacity;
    while (cap - used < n) cap *= 2;
    auto bigger = std::make_unique_for_overwrite<char[]>(cap);
    if (used) std::memcpy(bigger.get(), buf_.get() + begin_, used);
    buf_ = std::move(bigger);
    capacity_ = cap;
  }
  begin_ = 0;
  end_ = used;
  return buf_.get() + end_;
}

void Outbox::send(const proto::Message& m) {
  std::string frame;
  proto::encode_message(m, frame);
  std::memcpy(reserve(frame.size()), frame.data(), frame.size());
  end_ += frame.size();
}

Result<std::size_t> Outbox::fill_data(std::uint32_t stream, std::string_view type, std::size_t max,
                                      const Filler& fill) {
  std::size_t tail = proto::data_tail_size(type);
  char* frame = reserve(proto::kDataHeadSize + max + tail);
  auto got = fill(frame + proto::kDataHeadSize, max);
  if (!got || *got == 0) return got;
  std::size_t n = std::min(*got, max);
  proto::write_data_head(frame, stream, type, static_cast<std::uint32_t>(n));
  proto::write_data_tail(frame + proto::kDataHeadSize + n, type);
  end_ += proto::kDataHeadSize + n + tail;
  return n;
}

ssize_t Outbox::read_data(int fd, std::uint32_t stream, std::string_view type, std::size_t max) {
  ssize_t result = 0;
  (void)fill_data(stream, type, max, [&](char* dst, std::size_t want) -> Result<std::size_t> {
    do result = ::read(fd, dst, want);
    while (result < 0 && errno == EINTR);
    return result > 0 ? static_cast<std::size_t>(result) : 0;
  });
  return result;
}

bool Outbox::flush(int fd) {
  while (begin_ != end_) {
    ssize_t n = ::write(fd, buf_.get() + begin_, end_ - begin_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN;
    if (n == 0) return true;
    begin_ += static_cast<std::size_t>(n);
  }
  begin_ = end_ = 0;
  return true;
}

}  // namespace moat::agent
