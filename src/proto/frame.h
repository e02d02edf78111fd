// Wire framing of the host <-> guest protocol.
//
//   [len u32 BE][stream id u32 BE][flags u8][body: len bytes of CBOR]
//
// `len` counts the body only. A frame whose declared body exceeds
// kMaxBodySize is a protocol violation: the reader cannot resynchronise
// after it, so the connection is dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace moat::proto {

inline constexpr std::size_t kHeaderSize = 9;
inline constexpr std::size_t kMaxBodySize = 1 << 20;  // 1 MiB

// Flag bits.
inline constexpr std::uint8_t kFlagEndStream = 0x01;  // last frame of a stream

struct FramePeek;  // frame_peek.h

struct Frame {
  std::uint32_t stream = 0;
  std::uint8_t flags = 0;
  std::string body;  // raw CBOR bytes
};

// Appends the encoded frame to `out`. The body must not exceed kMaxBodySize.
void encode_frame(std::uint32_t stream, std::uint8_t flags, std::string_view body,
                  std::string& out);

// Why a frame announcing `declared` body bytes is refused.
Error frame_too_large(std::uint32_t declared, std::size_t max_body);

// Incremental decoder: feed it bytes as they arrive, take out whole frames.
class FrameDecoder {
 public:
  explicit FrameDecoder(std::size_t max_body = kMaxBodySize) : max_body_(max_body) {}

  void feed(const char* data, std::size_t size);
  void feed(std::string_view data) { feed(data.data(), data.size()); }

  // Next complete frame, if any. Returns an Error (and stays failed) when the
  // stream announced an oversized frame; the caller must close the connection.
  Result<bool> next(Frame& out);

  // The frame at the front without taking it out or copying its body (a
  // relay passes the body on as it is): the view is valid until the next
  // feed or consume. An oversize frame is reported, not remembered: the
  // caller must close the connection.
  FramePeek peek() const;
  // Takes `size` bytes off the front: the frame_size() of a complete peek.
  void consume(std::size_t size);

  std::size_t buffered() const { return buf_.size() - pos_; }
  std::size_t max_body() const { return max_body_; }

 private:
  std::string buf_;
  std::size_t pos_ = 0;
  std::size_t max_body_;
  bool failed_ = false;
};

// Helpers to read and write big-endian integers.
inline std::uint32_t load_be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}
inline void store_be32(std::uint32_t v, char* p) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

}  // namespace moat::proto
