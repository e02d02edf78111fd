#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proto/frame.h"
#include "proto/frame_peek.h"
#include "proto/message.h"

namespace moat::proto {
namespace {

std::string frame_of(std::uint32_t stream, std::uint8_t flags, std::string_view body) {
  std::string out;
  encode_frame(stream, flags, body, out);
  return out;
}

// The body of an encoded message (the frame minus its header).
std::string body_of(const Message& m) { return encode_message(m).substr(kHeaderSize); }

std::string cbor(const Json& j) {
  std::vector<std::uint8_t> bytes = Json::to_cbor(j);
  return std::string(bytes.begin(), bytes.end());
}

TEST(ProtoFramePeek, CompleteFrameGivesHeaderAndBody) {
  std::string bytes = frame_of(0x01020304, kFlagEndStream, "hello");
  FramePeek peek = peek_frame(bytes);
  EXPECT_EQ(peek.status, PeekStatus::kComplete);
  EXPECT_EQ(peek.header.body_size, 5u);
  EXPECT_EQ(peek.header.stream, 0x01020304u);
  EXPECT_EQ(peek.header.flags, kFlagEndStream);
  EXPECT_EQ(peek.body, "hello");
  EXPECT_EQ(peek.frame_size(), kHeaderSize + 5);
}

TEST(ProtoFramePeek, OnlyTheFirstFrameIsRead) {
  std::string bytes = frame_of(7, 0, "ab") + frame_of(8, 0, "cde");
  FramePeek first = peek_frame(bytes);
  ASSERT_EQ(first.status, PeekStatus::kComplete);
  EXPECT_EQ(first.header.stream, 7u);
  EXPECT_EQ(first.body, "ab");
  FramePeek second = peek_frame(std::string_view(bytes).substr(first.frame_size()));
  ASSERT_EQ(second.status, PeekStatus::kComplete);
  EXPECT_EQ(second.header.stream, 8u);
  EXPECT_EQ(second.body, "cde");
}

TEST(ProtoFramePeek, EmptyBodyIsComplete) {
  std::string bytes = frame_of(3, 0, "");
  FramePeek peek = peek_frame(bytes);
  EXPECT_EQ(peek.status, PeekStatus::kComplete);
  EXPECT_EQ(peek.header.body_size, 0u);
  EXPECT_EQ(peek.body, "");
}

TEST(ProtoFramePeek, ShortHeaderNeedsMore) {
  std::string bytes = frame_of(3, 0, "xyz");
  for (std::size_t n = 0; n < kHeaderSize; ++n) {
    FramePeek peek = peek_frame(std::string_view(bytes).substr(0, n));
    EXPECT_EQ(peek.status, PeekStatus::kNeedHeader) << n << " bytes";
    EXPECT_EQ(peek.header.body_size, 0u);
    EXPECT_EQ(peek.header.stream, 0u);
    EXPECT_TRUE(peek.body.empty());
  }
}

TEST(ProtoFramePeek, ShortBodyGivesTheHeaderOnly) {
  std::string bytes = frame_of(9, kFlagEndStream, "0123456789");
  for (std::size_t n = kHeaderSize; n < bytes.size(); ++n) {
    FramePeek peek = peek_frame(std::string_view(bytes).substr(0, n));
    EXPECT_EQ(peek.status, PeekStatus::kNeedBody) << n << " bytes";
    EXPECT_EQ(peek.header.body_size, 10u);
    EXPECT_EQ(peek.header.stream, 9u);
    EXPECT_EQ(peek.header.flags, kFlagEndStream);
    EXPECT_TRUE(peek.body.empty());
  }
}

TEST(ProtoFramePeek, OversizeLengthIsRefusedBeforeTheBodyArrives) {
  std::string header(kHeaderSize, '\0');
  store_be32(static_cast<std::uint32_t>(kMaxBodySize + 1), header.data());
  store_be32(5, header.data() + 4);
  FramePeek peek = peek_frame(header);
  EXPECT_EQ(peek.status, PeekStatus::kOversize);
  EXPECT_EQ(peek.header.body_size, kMaxBodySize + 1);
  EXPECT_EQ(peek.header.stream, 5u);
  EXPECT_TRUE(peek.body.empty());

  store_be32(0xffffffffu, header.data());
  EXPECT_EQ(peek_frame(header).status, PeekStatus::kOversize);
}

TEST(ProtoFramePeek, LimitIsInclusiveAndAdjustable) {
  std::string bytes = frame_of(1, 0, std::string(16, 'x'));
  EXPECT_EQ(peek_frame(bytes, 16).status, PeekStatus::kComplete);
  EXPECT_EQ(peek_frame(bytes, 15).status, PeekStatus::kOversize);
}

TEST(ProtoFramePeek, EnvelopeOfEveryMessageType) {
  const std::string_view types[] = {msg::kHello,  msg::kPing,   msg::kPong,       msg::kShutdown, msg::kStop,
                                    msg::kExec,   msg::kStarted, msg::kStdin,     msg::kStdinClose, msg::kStdout,
                                    msg::kStderr, msg::kWindow, msg::kResize,     msg::kSignal,   msg::kCancel,
                                    msg::kExit,   msg::kError};
  for (std::string_view type : types) {
    std::string bytes = encode_message(make_message(4, type, Json::object({{"n", 1}})));
    FramePeek frame = peek_frame(bytes);
    ASSERT_EQ(frame.status, PeekStatus::kComplete) << type;
    EXPECT_EQ(frame.header.stream, 4u);
    auto env = peek_message_envelope(frame.body);
    ASSERT_TRUE(env.has_value()) << type;
    EXPECT_EQ(env->version, kProtocolVersion) << type;
    EXPECT_EQ(env->type, type);
  }
}

TEST(ProtoFramePeek, EnvelopeOfADataMessageSkipsItsBytes) {
  std::string data(100000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  std::string body = body_of(make_data_message(2, msg::kStdin, data));
  auto env = peek_message_envelope(body);
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->type, "stdin");
  EXPECT_EQ(env->version, 1u);
}

TEST(ProtoFramePeek, EnvelopeOfAnErrorMessageWithEndStream) {
  std::string bytes = encode_message(make_error_message(6, "bad", "text"));
  FramePeek frame = peek_frame(bytes);
  ASSERT_EQ(frame.status, PeekStatus::kComplete);
  EXPECT_EQ(frame.header.flags, kFlagEndStream);
  auto env = peek_message_envelope(frame.body);
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->type, "error");
}

TEST(ProtoFramePeek, EnvelopeAcceptsWhatTheDecoderAccepts) {
  // No payload, extra keys, nested payloads and every accepted simple value.
  const Json accepted[] = {
      Json{{"v", 1}, {"t", "ping"}},
      Json{{"v", 4294967295u}, {"t", "x"}, {"p", Json::object()}, {"other", Json::array({1, "a"})}},
      Json{{"v", 1}, {"t", std::string(kMaxTypeLength, 't')}, {"p", {{"a", {{"b", {1, 2, 3}}}}}}},
      Json{{"v", 1}, {"t", "exit"}, {"p", {{"f", false}, {"n", nullptr}, {"d", 1.5}, {"i", -7}}}},
  };
  for (const Json& j : accepted) {
    std::string body = cbor(j);
    Frame f;
    f.body = body;
    auto decoded = decode_message(f);
    ASSERT_TRUE(decoded.ok()) << j.dump();
    auto env = peek_message_envelope(body);
    ASSERT_TRUE(env.has_value()) << j.dump();
    EXPECT_EQ(env->version, decoded->version);
    EXPECT_EQ(env->type, decoded->type);
  }
}

TEST(ProtoFramePeek, EnvelopeDeclinesWhatTheDecoderRejects) {
  const Json rejected[] = {
      Json::array({1, 2}),                                  // not a map
      Json{{"t", "ping"}},                                  // no version
      Json{{"v", 1}},                                       // no type
      Json{{"v", -1}, {"t", "ping"}},                       // signed version
      Json{{"v", 4294967296u}, {"t", "ping"}},              // version past 32 bits
      Json{{"v", "1"}, {"t", "ping"}},                      // version as text
      Json{{"v", 1}, {"t", ""}},                            // empty type
      Json{{"v", 1}, {"t", std::string(kMaxTypeLength + 1, 't')}},  // long type
      Json{{"v", 1}, {"t", 5}},                             // type not a string
      Json{{"v", 1}, {"t", "ping"}, {"p", Json::array()}},  // payload not a map
  };
  for (const Json& j : rejected) {
    std::string body = cbor(j);
    Frame f;
    f.body = body;
    EXPECT_FALSE(decode_message(f).ok()) << j.dump();
    EXPECT_FALSE(peek_message_envelope(body).has_value()) << j.dump();
  }
}

TEST(ProtoFramePeek, EnvelopeDeclinesMalformedCbor) {
  std::string good = body_of(make_message(1, msg::kPing));
  // Every truncation and trailing garbage.
  for (std::size_t n = 0; n < good.size(); ++n)
    EXPECT_FALSE(peek_message_envelope(std::string_view(good).substr(0, n)).has_value()) << n;
  EXPECT_FALSE(peek_message_envelope(good + "x").has_value());
  // A map claiming far more entries than the body holds.
  EXPECT_FALSE(peek_message_envelope(std::string("\xbb\xff\xff\xff\xff\xff\xff\xff\xff", 9)).has_value());
  // A tag, "undefined", an indefinite-length map, a non-string key.
  EXPECT_FALSE(peek_message_envelope(std::string("\xa1\x61t\xc1\x00", 5)).has_value());
  EXPECT_FALSE(peek_message_envelope(std::string("\xa2\x61v\x01\x61t\xf7", 7)).has_value());
  EXPECT_FALSE(peek_message_envelope(std::string("\xbf\x61v\x01\xff", 5)).has_value());
  EXPECT_FALSE(peek_message_envelope(std::string("\xa3\x61v\x01\x61t\x61x\x01\x02", 9)).has_value());
  // The same key twice: the decoder keeps the last, the peek does not guess.
  EXPECT_FALSE(peek_message_envelope(std::string("\xa3\x61v\x01\x61t\x61x\x61t\x61y", 11)).has_value());
}

TEST(ProtoFramePeek, EnvelopeDeclinesNestingPastTheGuardsDepth) {
  std::string body = "\xa3\x61v\x01\x61t\x61x\x61p\xa1\x61q";
  for (std::size_t i = 0; i < kMaxCborDepth; ++i) body += '\x81';
  body += '\x00';
  EXPECT_FALSE(peek_message_envelope(body).has_value());
  Frame f;
  f.body = body;
  EXPECT_FALSE(decode_message(f).ok());
}

TEST(ProtoFramePeek, DecoderPeeksWithoutTakingAndConsumesWholeFrames) {
  FrameDecoder decoder;
  std::string bytes = frame_of(11, 0, "first") + frame_of(12, kFlagEndStream, "second");
  decoder.feed(std::string_view(bytes).substr(0, 4));
  EXPECT_EQ(decoder.peek().status, PeekStatus::kNeedHeader);
  decoder.feed(std::string_view(bytes).substr(4, 8));
  FramePeek partial = decoder.peek();
  EXPECT_EQ(partial.status, PeekStatus::kNeedBody);
  EXPECT_EQ(partial.header.stream, 11u);
  decoder.feed(std::string_view(bytes).substr(12));

  FramePeek first = decoder.peek();
  ASSERT_EQ(first.status, PeekStatus::kComplete);
  EXPECT_EQ(first.body, "first");
  EXPECT_EQ(decoder.peek().body, "first");  // peeking twice takes nothing
  decoder.consume(first.frame_size());

  FramePeek second = decoder.peek();
  ASSERT_EQ(second.status, PeekStatus::kComplete);
  EXPECT_EQ(second.header.stream, 12u);
  EXPECT_EQ(second.header.flags, kFlagEndStream);
  EXPECT_EQ(second.body, "second");
  decoder.consume(second.frame_size());
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_EQ(decoder.peek().status, PeekStatus::kNeedHeader);
}

TEST(ProtoFramePeek, DecoderReportsOversizeWithTheDecodersWords) {
  FrameDecoder decoder(100);
  std::string header(kHeaderSize, '\0');
  store_be32(101, header.data());
  decoder.feed(header);
  FramePeek peek = decoder.peek();
  EXPECT_EQ(peek.status, PeekStatus::kOversize);
  EXPECT_EQ(peek.header.body_size, 101u);
  Frame f;
  auto got = decoder.next(f);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().message, frame_too_large(101, decoder.max_body()).message);
  EXPECT_EQ(got.error().message, "frame of 101 bytes exceeds the limit of 100 bytes");
}

}  // namespace
}  // namespace moat::proto
