// include/moat/result.h and version.h: what SDKs and front ends branch on.
#include <gtest/gtest.h>

#include <cerrno>
#include <regex>
#include <string>

#include "moat/result.h"
#include "moat/version.h"

namespace moat {
namespace {

TEST(PublicResult, ErrorKindsFollowTheCode) {
  EXPECT_EQ(make_error("x").kind(), ErrorKind::kUnknown);
  EXPECT_EQ(make_error("no such sandbox: a", ENOENT).kind(), ErrorKind::kNotFound);
  EXPECT_EQ(make_error("exists", EEXIST).kind(), ErrorKind::kAlreadyExists);
  EXPECT_EQ(make_error("bad", EINVAL).kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(make_error("busy", EBUSY).kind(), ErrorKind::kBusy);
  EXPECT_EQ(make_error("not running", ENOTCONN).kind(), ErrorKind::kNotRunning);
  EXPECT_EQ(make_error("late", ETIMEDOUT).kind(), ErrorKind::kTimedOut);
  EXPECT_EQ(make_error("signal", EINTR).kind(), ErrorKind::kInterrupted);
  EXPECT_EQ(make_error("full", ENOSPC).kind(), ErrorKind::kResourceExhausted);
  EXPECT_EQ(make_error("peer", EPROTO).kind(), ErrorKind::kProtocol);
  EXPECT_EQ(make_error("disk", EIO).kind(), ErrorKind::kIo);
  EXPECT_EQ(make_error("a file, not a directory", ENOTDIR).kind(), ErrorKind::kInvalidArgument);
  EXPECT_STREQ(to_string(make_error("a", ENOENT).wrap("context").kind()), "not_found");
}

TEST(PublicResult, ErrorOfAValueIsEmpty) {
  Result<int> r = 7;
  EXPECT_EQ(r.error().code, 0);
  EXPECT_EQ(r.error().message, "");
  EXPECT_EQ(r.value(), 7);
}

// Nothing is thrown out of libmoat, not even for a caller's misuse.
TEST(PublicResultDeathTest, ValueOfAnErrorEndsTheProcessWithTheError) {
  Result<int> r = make_error("no such image: x", ENOENT);
  EXPECT_DEATH((void)r.value(), "Result::value\\(\\) called on an error: no such image: x");
}

TEST(PublicResult, VersionIsMajorMinorPatch) {
  EXPECT_TRUE(std::regex_match(std::string(version()), std::regex("[0-9]+\\.[0-9]+\\.[0-9]+"))) << version();
}

}  // namespace
}  // namespace moat
