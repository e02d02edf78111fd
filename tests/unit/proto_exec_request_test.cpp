// The exec request's limits, checked before sending: the error names the
// limit that was hit instead of the connection breaking ("Broken pipe").
#include <gtest/gtest.h>

#include <string>

#include "proto/exec.h"

namespace moat {
namespace {

TEST(ExecRequestLimits, NamesTheLimitThatWasHit) {
  proto::ExecRequest r;
  r.argv = {"true"};
  EXPECT_TRUE(proto::check_exec_request(r));
  // 9 variables of 120 KiB: each fits, together they pass 1 MiB.
  for (int i = 0; i < 9; ++i) r.env.push_back("V" + std::to_string(i) + "=" + std::string(120 * 1024, 'x'));
  auto st = proto::check_exec_request(r);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message.find("the command and its environment take "), 0u) << st.error().message;
  EXPECT_NE(st.error().message.find(" bytes encoded; one exec request may be at most 1 MiB (1048576 bytes)"),
            std::string::npos)
      << st.error().message;
  r.env = {"SECRET=" + std::string(128 * 1024, 's')};
  EXPECT_EQ(proto::check_exec_request(r).error().message,
            "one of the environment variables (\"SECRET...\") is 131079 bytes; each may be at most 128 KiB");
  r.env.assign(4097, "A=1");
  EXPECT_EQ(proto::check_exec_request(r).error().message, "4097 environment variables given; at most 4096");
}

}  // namespace
}  // namespace moat
