// Reading what a relay needs from a frame without decoding its payload.
//
// A relay such as the shim only needs a frame's header (frame.h) and the
// message type from its body (message.h) to route it; building the payload
// (the bytes of stdin, say) only to pass the original body on is wasted.
//
//  - peek_frame: the header of the frame at the start of a byte buffer, and
//    whether its whole body is there, bounded by the body limit.
//  - peek_message_envelope: the version "v" and type "t" of a message body,
//    read by walking the CBOR without materialising anything. It answers
//    only for bodies that decode_message() certainly accepts, with the
//    values decode_message() would give; anything else (malformed, unusual
//    or merely unexpected) is nullopt, and the caller decodes in full, which
//    also words the error.
//
// Both take untrusted bytes: every length is checked against what is left,
// nothing is allocated, and the walk is iterative with a bounded depth.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

#include "proto/cbor_guard.h"
#include "proto/frame.h"
#include "proto/message.h"

namespace moat::proto {

struct FrameHeader {
  std::uint32_t body_size = 0;
  std::uint32_t stream = 0;
  std::uint8_t flags = 0;
};

enum class PeekStatus {
  kNeedHeader,  // fewer than kHeaderSize bytes: nothing is known yet
  kOversize,    // the declared body exceeds the limit: a protocol violation
  kNeedBody,    // the header is read; the body is not all there yet
  kComplete,    // header and whole body are in the buffer
};

struct FramePeek {
  PeekStatus status = PeekStatus::kNeedHeader;
  FrameHeader header;     // read unless status is kNeedHeader
  std::string_view body;  // the body's bytes when status is kComplete

  // Bytes the whole frame takes in the buffer (meaningful once the header
  // is read and not oversize).
  std::size_t frame_size() const { return kHeaderSize + header.body_size; }
};

// The frame at the start of `bytes`. Never reads past `bytes`.
inline FramePeek peek_frame(std::string_view bytes, std::size_t max_body = kMaxBodySize) {
  FramePeek peek;
  if (bytes.size() < kHeaderSize) return peek;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  peek.header.body_size = load_be32(p);
  peek.header.stream = load_be32(p + 4);
  peek.header.flags = p[8];
  if (peek.header.body_size > max_body) {
    peek.status = PeekStatus::kOversize;
    return peek;
  }
  if (bytes.size() - kHeaderSize < peek.header.body_size) {
    peek.status = PeekStatus::kNeedBody;
    return peek;
  }
  peek.status = PeekStatus::kComplete;
  peek.body = bytes.substr(kHeaderSize, peek.header.body_size);
  return peek;
}

struct MessageEnvelope {
  std::uint32_t version = 0;
  std::string_view type;  // points into the body that was peeked
};

namespace peek_detail {

// One CBOR item's head: major type, additional info and argument.
struct ItemHead {
  unsigned major = 0;
  unsigned info = 0;
  std::uint64_t arg = 0;
};

class CborWalker {
 public:
  explicit CborWalker(std::string_view bytes)
      : p_(reinterpret_cast<const unsigned char*>(bytes.data())), size_(bytes.size()) {}

  std::size_t remaining() const { return size_ - pos_; }
  std::size_t pos() const { return pos_; }

  // Reads an item's head; definite lengths only (moat never sends others).
  std::optional<ItemHead> head() {
    if (remaining() == 0) return std::nullopt;
    ItemHead h;
    unsigned char initial = p_[pos_++];
    h.major = initial >> 5;
    h.info = initial & 0x1f;
    if (h.info < 24) {
      h.arg = h.info;
      return h;
    }
    std::size_t n = h.info == 24 ? 1 : h.info == 25 ? 2 : h.info == 26 ? 4 : h.info == 27 ? 8 : 0;
    if (n == 0 || remaining() < n) return std::nullopt;
    for (std::size_t i = 0; i < n; ++i) h.arg = (h.arg << 8) | p_[pos_++];
    return h;
  }

  // Steps over a string's bytes, returning them.
  std::optional<std::string_view> string_bytes(std::uint64_t length) {
    if (length > remaining()) return std::nullopt;
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), static_cast<std::size_t>(length));
    pos_ += static_cast<std::size_t>(length);
    return s;
  }

 private:
  const unsigned char* p_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Simple values the JSON decoder takes: false, true, null and the three
// float widths. It rejects "undefined" and the unassigned ones.
inline bool accepted_simple(unsigned info) {
  return info == 20 || info == 21 || info == 22 || info == 25 || info == 26 || info == 27;
}

// Which top-level key a text string is, for the three the envelope has.
enum class TopKey { kOther, kVersion, kType, kPayload };

inline TopKey top_key(std::string_view key) {
  if (key == "v") return TopKey::kVersion;
  if (key == "t") return TopKey::kType;
  if (key == "p") return TopKey::kPayload;
  return TopKey::kOther;
}

}  // namespace peek_detail

// The version and type of a message body, when decode_message() would
// certainly accept it (see the top of this file). Rules it enforces beyond
// the CBOR guard's: a map at the top, text-string keys in every map, simple
// values the JSON decoder knows, "v" an unsigned 32-bit integer, "t" a text
// string of 1..kMaxTypeLength bytes, "p" (if any) a map, and none of the
// three twice.
inline std::optional<MessageEnvelope> peek_message_envelope(std::string_view body) {
  using peek_detail::ItemHead;
  using peek_detail::TopKey;
  peek_detail::CborWalker walk(body);

  struct Open {
    std::uint64_t items_left = 0;
    bool is_map = false;
  };
  std::array<Open, kMaxCborDepth> open{};
  std::size_t depth = 0;

  std::optional<ItemHead> top = walk.head();
  if (!top || top->major != 5) return std::nullopt;
  if (top->arg > walk.remaining() || top->arg * 2 > walk.remaining()) return std::nullopt;
  open[depth++] = {top->arg * 2, true};

  MessageEnvelope env;
  bool seen_version = false, seen_type = false, seen_payload = false;
  TopKey value_of = TopKey::kOther;  // which top-level key the next item is the value of

  while (depth > 0) {
    Open& level = open[depth - 1];
    if (level.items_left == 0) {
      --depth;
      continue;
    }
    bool is_key = level.is_map && level.items_left % 2 == 0;
    bool at_top = depth == 1;
    --level.items_left;
    std::optional<ItemHead> h = walk.head();
    if (!h) return std::nullopt;
    if (is_key && h->major != 3) return std::nullopt;

    if (at_top && !is_key) {
      // The value of a top-level key: the three known ones are checked as
      // decode_message() checks them.
      switch (value_of) {
        case TopKey::kVersion:
          if (h->major != 0 || h->arg > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
          env.version = static_cast<std::uint32_t>(h->arg);
          break;
        case TopKey::kType:
          if (h->major != 3 || h->arg == 0 || h->arg > kMaxTypeLength) return std::nullopt;
          break;
        case TopKey::kPayload:
          if (h->major != 5) return std::nullopt;
          break;
        case TopKey::kOther:
          break;
      }
    }

    switch (h->major) {
      case 0:
      case 1:
        break;
      case 2:
      case 3: {
        auto bytes = walk.string_bytes(h->arg);
        if (!bytes) return std::nullopt;
        if (at_top && is_key) {
          value_of = peek_detail::top_key(*bytes);
          bool& seen = value_of == TopKey::kVersion ? seen_version
                       : value_of == TopKey::kType  ? seen_type
                                                    : seen_payload;
          if (value_of != TopKey::kOther) {
            if (seen) return std::nullopt;
            seen = true;
          }
        } else if (at_top && value_of == TopKey::kType) {
          env.type = *bytes;
        }
        break;
      }
      case 4:
      case 5: {
        if (depth == kMaxCborDepth) return std::nullopt;
        std::uint64_t items = h->major == 5 ? h->arg * 2 : h->arg;
        // Each item takes at least a byte: a larger count is a lie (and the
        // check on arg keeps the doubling from overflowing).
        if (h->arg > walk.remaining() || items > walk.remaining()) return std::nullopt;
        open[depth++] = {items, h->major == 5};
        break;
      }
      case 6:
        return std::nullopt;  // tags
      case 7:
        if (!peek_detail::accepted_simple(h->info)) return std::nullopt;
        break;
    }
  }
  if (walk.remaining() != 0) return std::nullopt;  // trailing bytes
  if (!seen_version || !seen_type) return std::nullopt;
  return env;
}

}  // namespace moat::proto
