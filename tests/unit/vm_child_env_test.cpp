// The environment the shim and QEMU get: an allow-list, never the caller's
// secrets.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vm/child_env.h"

namespace moat::vm {
namespace {

TEST(ChildEnv, KeepsOnlyTheAllowList) {
  std::vector<std::string> in = {"PATH=/usr/bin", "SECRET_TOKEN=x", "LANG=C.UTF-8", "LC_ALL=C", "LC_=x",
                                 "LC_lower=x", "TMPDIR=/tmp", "TZ=UTC", "HOME=/root", "MOAT_HOME=/m",
                                 "AWS_SECRET_ACCESS_KEY=k", "PATHX=1", "ASAN_OPTIONS=a=1", "LD_PRELOAD=/evil.so"};
  std::vector<char*> env;
  for (auto& s : in) env.push_back(s.data());
  env.push_back(nullptr);
  EXPECT_EQ(child_env(env.data()), (std::vector<std::string>{"PATH=/usr/bin", "LANG=C.UTF-8", "LC_ALL=C",
                                                              "TMPDIR=/tmp", "TZ=UTC", "ASAN_OPTIONS=a=1"}));
  std::vector<std::string> storage;
  auto envp = child_envp(env.data(), storage);
  ASSERT_EQ(envp.size(), 7u);
  EXPECT_EQ(envp.back(), nullptr);
  EXPECT_STREQ(envp[0], "PATH=/usr/bin");
  EXPECT_TRUE(child_env(nullptr).empty());
}

}  // namespace
}  // namespace moat::vm
