#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "shim_contract/shim_config.h"

namespace moat::shim {
namespace {

TEST(ShimConfigLogCap, DefaultsToOneMebibyteAndRefusesCapsOutOfRange) {
  char tmpl[] = "/tmp/moat-shim-config-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/config.json";
  ShimConfig c;
  c.sandbox_id = "abc";
  c.dir = tmpl;
  EXPECT_EQ(c.log_max_bytes, 1u << 20);
  c.log_max_bytes = 8192;
  ASSERT_TRUE(write_shim_config(c, path).ok());
  auto back = read_shim_config(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->log_max_bytes, 8192u);
  c.log_max_bytes = 100;
  ASSERT_TRUE(write_shim_config(c, path).ok());
  auto small = read_shim_config(path);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.error().message.find("log_max_bytes must be between 4096 and 1073741824"), std::string::npos)
      << small.error().message;
  std::system(("rm -rf '" + std::string(tmpl) + "'").c_str());
}

TEST(ShimConfigRestore, TheSavedStatePathRoundTripsAndIsEmptyByDefault) {
  char tmpl[] = "/tmp/moat-shim-config-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/config.json";
  ShimConfig c;
  c.sandbox_id = "abc";
  c.dir = tmpl;
  ASSERT_TRUE(write_shim_config(c, path).ok());
  auto plain = read_shim_config(path);
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_EQ(plain->restore_from, "");
  c.restore_from = memory_state_path(tmpl);
  ASSERT_TRUE(write_shim_config(c, path).ok());
  auto back = read_shim_config(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->restore_from, std::string(tmpl) + "/memory.state");
  std::system(("rm -rf '" + std::string(tmpl) + "'").c_str());
}

}  // namespace
}  // namespace moat::shim
