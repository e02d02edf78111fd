#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "shim_contract/shim_config.h"

namespace moat::shim {
namespace {

// A config in a directory of its own, removed with it.
struct ConfigDir {
  std::string dir;
  std::string path;
  ShimConfig c;
  ConfigDir() {
    char tmpl[] = "/tmp/moat-shim-config-XXXXXX";
    EXPECT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    path = dir + "/config.json";
    c.sandbox_id = "abc";
    c.dir = dir;
  }
  ~ConfigDir() { std::system(("rm -rf '" + dir + "'").c_str()); }
};

TEST(ShimConfigLogCap, DefaultsToOneMebibyteAndRefusesCapsOutOfRange) {
  ConfigDir t;
  ShimConfig& c = t.c;
  const std::string& path = t.path;
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
}

TEST(ShimConfigRestore, TheSavedStatePathRoundTripsAndIsEmptyByDefault) {
  ConfigDir t;
  ShimConfig& c = t.c;
  const std::string& path = t.path;
  ASSERT_TRUE(write_shim_config(c, path).ok());
  auto plain = read_shim_config(path);
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_EQ(plain->restore_from, "");
  EXPECT_EQ(plain->restore_ram, "");
  EXPECT_FALSE(plain->restore_ram_shared);
  c.restore_from = memory_state_path(t.dir);
  c.restore_ram = shared_ram_path(t.dir);
  c.restore_ram_shared = true;
  ASSERT_TRUE(write_shim_config(c, path).ok());
  auto back = read_shim_config(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->restore_from, t.dir + "/memory.state");
  EXPECT_EQ(back->restore_ram, t.dir + "/shared.ram");
  EXPECT_TRUE(back->restore_ram_shared);
}

}  // namespace
}  // namespace moat::shim
