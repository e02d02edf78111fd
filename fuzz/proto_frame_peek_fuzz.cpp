// Fuzzes the relay's quick reads (proto/frame_peek.h) against the full
// decoders they stand in for: a frame header must read as FrameDecoder reads
// it, and a message envelope the peek vouches for must decode, to the same
// version and type. A peek that says more than the decoder would let a
// relay pass on what the shim used to reject.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/frame.h"
#include "proto/frame_peek.h"
#include "proto/message.h"

namespace {

constexpr std::size_t kFuzzMaxBody = 64 * 1024;

void check_frame_header(std::string_view bytes) {
  moat::proto::FramePeek peek = moat::proto::peek_frame(bytes, kFuzzMaxBody);
  moat::proto::FrameDecoder decoder(kFuzzMaxBody);
  decoder.feed(bytes);
  // The decoder's own peek reads its buffer as the free function reads the
  // bytes.
  moat::proto::FramePeek buffered = decoder.peek();
  if (buffered.status != peek.status || buffered.body != peek.body ||
      (peek.status != moat::proto::PeekStatus::kNeedHeader &&
       (buffered.header.body_size != peek.header.body_size || buffered.header.stream != peek.header.stream ||
        buffered.header.flags != peek.header.flags)))
    std::abort();
  moat::proto::Frame frame;
  auto got = decoder.next(frame);
  switch (peek.status) {
    case moat::proto::PeekStatus::kNeedHeader:
    case moat::proto::PeekStatus::kNeedBody:
      if (!got.ok() || *got) std::abort();
      break;
    case moat::proto::PeekStatus::kOversize:
      if (got.ok()) std::abort();
      break;
    case moat::proto::PeekStatus::kComplete:
      if (!got.ok() || !*got) std::abort();
      if (frame.stream != peek.header.stream || frame.flags != peek.header.flags ||
          frame.body.size() != peek.header.body_size || frame.body != peek.body)
        std::abort();
      if (decoder.buffered() != bytes.size() - peek.frame_size()) std::abort();
      break;
  }
}

void check_envelope(std::string_view body) {
  auto env = moat::proto::peek_message_envelope(body);
  if (!env) return;  // declining is always allowed: the caller decodes in full
  moat::proto::Frame frame;
  frame.body.assign(body);
  auto decoded = moat::proto::decode_message(frame);
  if (!decoded.ok()) std::abort();
  if (decoded->version != env->version || decoded->type != env->type) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_frame_header(bytes);
  check_envelope(bytes);
  // The body of a frame, as the relay peeks it.
  moat::proto::FramePeek peek = moat::proto::peek_frame(bytes, kFuzzMaxBody);
  if (peek.status == moat::proto::PeekStatus::kComplete) check_envelope(peek.body);
  return 0;
}
