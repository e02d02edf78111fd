#include <gtest/gtest.h>

#include "proto/frame.h"

namespace moat::proto {
namespace {

TEST(ProtoFrame, EncodesHeaderBigEndian) {
  std::string out;
  encode_frame(0x01020304, 0x05, "xyz", out);
  ASSERT_EQ(out.size(), kHeaderSize + 3);
  EXPECT_EQ(out.substr(0, 9), std::string("\x00\x00\x00\x03\x01\x02\x03\x04\x05", 9));
  EXPECT_EQ(out.substr(9), "xyz");
}

TEST(ProtoFrame, DecodesFramesFedOneByteAtATime) {
  std::string wire;
  encode_frame(7, 0, "hello", wire);
  encode_frame(8, kFlagEndStream, "", wire);
  encode_frame(9, 0, std::string(70000, 'x'), wire);
  FrameDecoder d;
  std::vector<Frame> got;
  for (char c : wire) {
    d.feed(&c, 1);
    Frame f;
    while (true) {
      auto r = d.next(f);
      ASSERT_TRUE(r.ok());
      if (!*r) break;
      got.push_back(f);
    }
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].stream, 7u);
  EXPECT_EQ(got[0].body, "hello");
  EXPECT_EQ(got[1].stream, 8u);
  EXPECT_EQ(got[1].flags, kFlagEndStream);
  EXPECT_EQ(got[1].body, "");
  EXPECT_EQ(got[2].body.size(), 70000u);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(ProtoFrame, PartialHeaderIsNotAFrame) {
  FrameDecoder d;
  d.feed(std::string("\x00\x00\x00", 3));
  Frame f;
  auto r = d.next(f);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

TEST(ProtoFrame, OversizedFrameFailsAndStaysFailed) {
  FrameDecoder d(1024);
  std::string wire;
  encode_frame(1, 0, std::string(1025, 'a'), wire);
  d.feed(wire);
  Frame f;
  auto r = d.next(f);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EMSGSIZE);
  EXPECT_NE(r.error().message.find("1025"), std::string::npos);
  EXPECT_FALSE(d.next(f).ok());
}

TEST(ProtoFrame, MaxSizedFrameIsAccepted) {
  FrameDecoder d(1024);
  std::string wire;
  encode_frame(1, 0, std::string(1024, 'a'), wire);
  d.feed(wire);
  Frame f;
  auto r = d.next(f);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
  EXPECT_EQ(f.body.size(), 1024u);
}

}  // namespace
}  // namespace moat::proto
