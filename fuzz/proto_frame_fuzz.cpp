// Fuzzes what the host and the agent do with bytes from the other side:
// frame decoding, the CBOR guard and message decoding, data bodies read in
// place, and the payload parsers of exec requests, exit statuses, errors and
// file streams, and the exec history written from them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "proto/data_frame.h"
#include "proto/exec.h"
#include "proto/exec_log.h"
#include "proto/file_ops.h"
#include "proto/frame.h"
#include "proto/message.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  moat::proto::FrameDecoder decoder(64 * 1024);
  // Feed in two pieces to exercise partial frames.
  std::size_t half = size / 2;
  decoder.feed(reinterpret_cast<const char*>(data), half);
  for (int round = 0; round < 2; ++round) {
    moat::proto::Frame frame;
    while (true) {
      auto got = decoder.next(frame);
      if (!got.ok() || !*got) break;
      auto m = moat::proto::decode_message(frame);
      if (!m.ok()) continue;
      (void)moat::proto::parse_exec_request(m->payload);
      (void)moat::proto::parse_exit_status(m->payload);
      (void)moat::proto::data_of(*m);
      (void)moat::proto::parse_error(m->payload);
      (void)moat::proto::parse_file_request(m->type, m->payload);
      (void)moat::proto::parse_entries(m->payload);
      (void)moat::proto::parse_file_result(m->payload);
      (void)moat::proto::exec_log_start(0, m->stream, m->payload);
      (void)moat::proto::exec_log_end(0, m->stream, *m);
      // Whatever decodes must encode again.
      std::string again = moat::proto::encode_message(*m);
      (void)again;
    }
    decoder.feed(reinterpret_cast<const char*>(data) + half, size - half);
  }
  // The body alone, as the message decoder sees it.
  moat::proto::Frame raw;
  raw.body.assign(reinterpret_cast<const char*>(data), size);
  (void)moat::proto::decode_message(raw);
  (void)moat::proto::view_data_body(raw.body);
  (void)moat::proto::data_fast_path(raw.body);
  return 0;
}
