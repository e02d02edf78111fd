// Data frames (`stdout`, `stderr`, `stdin`, `data`: a payload {"d": bytes})
// encoded without building a Json value.
//
// They carry every byte of exec output and file transfers. In the guest each
// copy and each page a large allocation faults in is paid for by the emulated
// CPU, so the agent writes these frames straight into its output buffer: the
// head, then the payload read in place by read(2), then the tail.
//
// The body is the map nlohmann's encoder writes for make_data_message (keys in
// its order: "p", "t", "v"). append_data_frame uses the shortest CBOR heads,
// so its bytes equal encode_message's; the in-place form gives the payload's
// length the fixed 4-byte head (additional info 26), which is well-formed
// CBOR for any length and which every decoder of ours accepts
// (decode_message, data_fast_path, frame_peek), so the head can be written
// before the payload's length is known.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proto/frame.h"
#include "proto/message.h"

namespace moat::proto {

// A data message's body read without the general CBOR parser: the exact
// layout above with any well-formed heads, a type of printable ASCII and a
// version that fits 32 bits. Anything else (a valid message laid out
// differently included) is nullopt, and the caller takes the checked path.
struct DataView {
  std::string_view type;
  std::string_view bytes;
  std::uint32_t version = 0;
};
std::optional<DataView> view_data_body(std::string_view body);

// Appends the frame encode_message(make_data_message(stream, type, bytes))
// would append, byte for byte. `type` is at most kMaxTypeLength bytes and
// `bytes` at most kMaxDataChunk (proto/exec.h), as the protocol allows.
void append_data_frame(std::string& out, std::uint32_t stream, std::string_view type, std::string_view bytes);

// The in-place form: kDataHeadSize bytes, the payload, data_tail_size(type)
// bytes.
inline constexpr std::size_t kDataHeadSize = kHeaderSize + 6 + 5;
std::size_t data_tail_size(std::string_view type);
// Writes the kDataHeadSize bytes before a payload of `n` bytes.
void write_data_head(char* dst, std::uint32_t stream, std::string_view type, std::uint32_t n);
// Writes the data_tail_size(type) bytes after the payload.
void write_data_tail(char* dst, std::string_view type);

}  // namespace moat::proto
