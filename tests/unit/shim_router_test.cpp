#include <gtest/gtest.h>

#include "shim/stream_router.h"

namespace moat::shim {
namespace {

TEST(ShimRouter, MapsClientStreamsToUniqueGuestIds) {
  StreamRouter r;
  auto a = r.to_guest(1, 1);
  auto b = r.to_guest(2, 1);
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  EXPECT_NE(*a, 0u);
  EXPECT_EQ(r.to_guest(1, 1), a);
  auto back = r.to_client(*b);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->first, 2u);
  EXPECT_EQ(back->second, 1u);
}

TEST(ShimRouter, EndedStreamIdsAreNeverReused) {
  StreamRouter r;
  auto a = *r.to_guest(1, 1);
  r.end_guest_stream(a);
  EXPECT_FALSE(r.to_client(a));
  auto again = *r.to_guest(1, 1);
  EXPECT_NE(again, a);
}

TEST(ShimRouter, DropClientReturnsItsOpenStreams) {
  StreamRouter r;
  auto a = *r.to_guest(1, 10);
  auto b = *r.to_guest(1, 11);
  auto c = *r.to_guest(2, 10);
  auto open = r.drop_client(1);
  ASSERT_EQ(open.size(), 2u);
  EXPECT_TRUE((open[0] == a && open[1] == b) || (open[0] == b && open[1] == a));
  EXPECT_TRUE(r.to_client(c));
  EXPECT_EQ(r.open_streams(), 1u);
}

TEST(ShimRouter, BoundsStreamsPerClient) {
  StreamRouter r;
  for (std::uint32_t i = 0; i < StreamRouter::kMaxStreamsPerClient; ++i) ASSERT_TRUE(r.to_guest(1, i));
  EXPECT_FALSE(r.to_guest(1, 100000));
  EXPECT_TRUE(r.to_guest(2, 1));
}

}  // namespace
}  // namespace moat::shim

namespace moat::shim {
namespace {

TEST(ShimRouter, FindGuestNeverCreates) {
  StreamRouter r;
  EXPECT_FALSE(r.find_guest(1, 1));
  auto a = *r.to_guest(1, 1);
  EXPECT_EQ(r.find_guest(1, 1), a);
  r.end_guest_stream(a);
  EXPECT_FALSE(r.find_guest(1, 1));
  EXPECT_EQ(r.open_streams(), 0u);
}

}  // namespace
}  // namespace moat::shim
