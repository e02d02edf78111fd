#include "proto/frame.h"

#include <algorithm>
#include <cerrno>

#include "proto/frame_peek.h"

namespace moat::proto {

void encode_frame(std::uint32_t stream, std::uint8_t flags, std::string_view body,
                  std::string& out) {
  char header[kHeaderSize];
  store_be32(static_cast<std::uint32_t>(body.size()), header);
  store_be32(stream, header + 4);
  header[8] = static_cast<char>(flags);
  out.append(header, kHeaderSize);
  out.append(body.data(), body.size());
}

Error frame_too_large(std::uint32_t declared, std::size_t max_body) {
  return make_error("frame of " + std::to_string(declared) + " bytes exceeds the limit of " +
                        std::to_string(max_body) + " bytes",
                    EMSGSIZE);
}

FramePeek FrameDecoder::peek() const {
  return peek_frame(std::string_view(buf_).substr(pos_), max_body_);
}

void FrameDecoder::consume(std::size_t size) { pos_ += std::min(size, buffered()); }

void FrameDecoder::feed(const char* data, std::size_t size) {
  // Compact lazily so a long-lived decoder does not grow without bound.
  if (pos_ > 0 && (pos_ == buf_.size() || pos_ > (1u << 16))) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(data, size);
}

Result<bool> FrameDecoder::next(Frame& out) {
  if (failed_) return make_error("frame decoder: stream already failed");
  std::size_t avail = buf_.size() - pos_;
  if (avail < kHeaderSize) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
  std::uint32_t len = load_be32(p);
  if (len > max_body_) {
    failed_ = true;
    return frame_too_large(len, max_body_);
  }
  if (avail < kHeaderSize + len) return false;
  out.stream = load_be32(p + 4);
  out.flags = p[8];
  out.body.assign(buf_.data() + pos_ + kHeaderSize, len);
  pos_ += kHeaderSize + len;
  return true;
}

}  // namespace moat::proto
