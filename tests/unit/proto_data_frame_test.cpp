#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proto/cbor_guard.h"
#include "proto/data_frame.h"
#include "proto/file_ops.h"
#include "proto/frame.h"
#include "proto/frame_peek.h"
#include "proto/message.h"

namespace moat::proto {
namespace {

const std::size_t kSizes[] = {0, 1, 23, 24, 255, 256, 65535, 65536};
const std::string_view kTypes[] = {msg::kData, msg::kStdout, msg::kStderr, msg::kStdin};

std::string pattern(std::size_t n) {
  std::string bytes(n, '\0');
  for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>(i * 7 + 3);
  return bytes;
}

// A frame in the in-place form: head, payload, tail.
std::string in_place_frame(std::uint32_t stream, std::string_view type, std::string_view bytes) {
  std::string f(kDataHeadSize + bytes.size() + data_tail_size(type), '\0');
  write_data_head(f.data(), stream, type, static_cast<std::uint32_t>(bytes.size()));
  f.replace(kDataHeadSize, bytes.size(), bytes);
  write_data_tail(f.data() + kDataHeadSize + bytes.size(), type);
  return f;
}

Frame whole_frame(std::string_view bytes) {
  FrameDecoder d;
  d.feed(bytes);
  Frame f;
  auto got = d.next(f);
  EXPECT_TRUE(got && *got);
  EXPECT_EQ(d.buffered(), 0u);
  return f;
}

TEST(DataFrame, AppendedBytesEqualEncodeMessage) {
  for (std::string_view type : kTypes) {
    for (std::size_t n : kSizes) {
      std::string bytes = pattern(n);
      std::string want = encode_message(make_data_message(7, type, bytes));
      std::string got = "prefix";
      append_data_frame(got, 7, type, bytes);
      EXPECT_EQ(got, "prefix" + want) << type << " " << n;
    }
  }
}

TEST(DataFrame, InPlaceFormDecodesLikeTheEncodedMessage) {
  for (std::string_view type : kTypes) {
    for (std::size_t n : kSizes) {
      std::string bytes = pattern(n);
      std::string frame = in_place_frame(0x01020304, type, bytes);
      Frame f = whole_frame(frame);
      EXPECT_EQ(f.stream, 0x01020304u);
      EXPECT_EQ(f.flags, 0);
      // The general checks and parser accept it...
      EXPECT_TRUE(check_cbor_structure(f.body));
      Json parsed = Json::from_cbor(f.body.begin(), f.body.end(), true, false);
      ASSERT_FALSE(parsed.is_discarded()) << type << " " << n;
      EXPECT_EQ(parsed, Json::from_cbor(Json::to_cbor(Json{{"v", 1}, {"t", std::string(type)}, {"p", {{"d", Json::binary(std::vector<std::uint8_t>(bytes.begin(), bytes.end()))}}}})));
      // ...and so do the fast paths and the shim's envelope peek.
      auto m = decode_message(f);
      ASSERT_TRUE(m) << m.error().message;
      EXPECT_EQ(m->type, type);
      EXPECT_EQ(m->version, kProtocolVersion);
      EXPECT_EQ(data_of(*m).value(), bytes);
      auto env = peek_message_envelope(f.body);
      ASSERT_TRUE(env) << type << " " << n;
      EXPECT_EQ(env->type, type);
      if (type == msg::kData) EXPECT_EQ(data_fast_path(f.body).value(), bytes);
      else EXPECT_FALSE(data_fast_path(f.body));
    }
  }
}

TEST(DataFrame, DecodeMessageFastPathMatchesTheGeneralParser) {
  for (std::string_view type : kTypes) {
    std::string bytes = pattern(1000);
    Message sent = make_data_message(9, type, bytes);
    Frame f = whole_frame(encode_message(sent));
    ASSERT_TRUE(view_data_body(f.body));
    auto m = decode_message(f);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->stream, 9u);
    EXPECT_EQ(m->type, sent.type);
    EXPECT_EQ(m->version, sent.version);
    EXPECT_EQ(m->payload, sent.payload);
  }
}

TEST(DataFrame, ViewRefusesAnyOtherLayout) {
  std::string body = encode_message(make_data_message(1, msg::kStdout, "abc")).substr(kHeaderSize);
  ASSERT_TRUE(view_data_body(body));
  for (std::size_t i = 0; i < body.size(); ++i) {
    // The payload's bytes may be anything, and the type any printable text.
    if ((i >= 7 && i < 10) || (i >= 13 && i < 19)) continue;
    std::string bad = body;
    bad[i] = static_cast<char>(bad[i] ^ 0x40);
    EXPECT_FALSE(view_data_body(bad)) << "flip at " << i;
  }
  EXPECT_FALSE(view_data_body(body.substr(0, body.size() - 1)));
  EXPECT_FALSE(view_data_body(body + "x"));
  EXPECT_FALSE(view_data_body(""));
  // A type that is not printable ASCII, or empty, goes to the general parser.
  for (std::string type : {std::string("a\nb"), std::string("\xc3\xa9"), std::string()}) {
    Json p = Json::object();
    p["d"] = Json::binary({1, 2});
    std::vector<std::uint8_t> c = Json::to_cbor(Json{{"v", 1}, {"t", std::string(type)}, {"p", p}});
    EXPECT_FALSE(view_data_body(std::string(c.begin(), c.end()))) << type;
  }
  // A payload with another key, or a message with more fields.
  std::vector<std::uint8_t> extra = Json::to_cbor(Json{{"v", 1}, {"t", "data"}, {"p", {{"d", Json::binary({1})}, {"e", 1}}}});
  EXPECT_FALSE(view_data_body(std::string(extra.begin(), extra.end())));
  // A length that runs past the body.
  std::string lying = body;
  lying[6] = static_cast<char>(0x5a);
  EXPECT_FALSE(view_data_body(lying));
}

}  // namespace
}  // namespace moat::proto
