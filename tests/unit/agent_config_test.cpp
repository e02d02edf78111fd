#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "agent/boot_config.h"
#include "agent/user_db.h"

namespace moat::agent {
namespace {

TEST(AgentBootConfig, ParsesMoatOptions) {
  auto c = parse_boot_config("console=ttyS0 quiet moat.root=overlay moat.lowerfs=erofs moat.hostname=box-1\n");
  EXPECT_EQ(c.root, RootMode::kOverlay);
  EXPECT_EQ(c.lower_fs, "erofs");
  EXPECT_EQ(c.hostname, "box-1");
  EXPECT_EQ(parse_boot_config("moat.root=rw").root, RootMode::kWritable);
  EXPECT_EQ(parse_boot_config("").root, RootMode::kNone);
}

TEST(AgentBootConfig, IgnoresBadValues) {
  auto c = parse_boot_config("moat.hostname=bad/name moat.lowerfs=btrfs moat.root=zfs");
  EXPECT_EQ(c.hostname, "moat");
  EXPECT_EQ(c.lower_fs, "ext4");
  EXPECT_EQ(c.root, RootMode::kNone);
}

// The host writes moat.net=1 exactly when it gives the VM a network device;
// anything else leaves the guest with loopback only.
TEST(AgentBootConfig, NetworkOnlyWithMoatNetOne) {
  EXPECT_FALSE(parse_boot_config("console=ttyS0 moat.root=overlay").network);
  EXPECT_TRUE(parse_boot_config("console=ttyS0 moat.root=overlay moat.net=1 moat.hostname=box").network);
  EXPECT_TRUE(parse_boot_config("moat.net=1\n").network);
  EXPECT_FALSE(parse_boot_config("moat.net=0").network);
  EXPECT_FALSE(parse_boot_config("moat.net=yes").network);
  EXPECT_FALSE(parse_boot_config("moat.net").network);
  EXPECT_FALSE(parse_boot_config("moat.network=1 xmoat.net=1").network);
}

class AgentUserDb : public ::testing::Test {
 protected:
  void SetUp() override {
    // A directory of its own: tests run in parallel (ctest -j) rewrite these files.
    std::string tmpl = ::testing::TempDir() + "agent-user-db-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    passwd_ = dir_ + "/passwd";
    group_ = dir_ + "/group";
    std::ofstream(passwd_) << "root:x:0:0:root:/root:/bin/sh\n"
                              "app:x:1000:1001:App:/home/app:/bin/sh\n"
                              "broken line\n";
    std::ofstream(group_) << "root:x:0:\nstaff:x:50:app,other\napp:x:1001:\nwheel:x:10:app\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, passwd_, group_;
};

TEST_F(AgentUserDb, ResolvesNamesNumbersAndGroups) {
  auto root = resolve_user("", passwd_, group_);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->home, "/root");

  auto app = resolve_user("app", passwd_, group_);
  ASSERT_TRUE(app.ok());
  EXPECT_EQ(app->uid, 1000u);
  EXPECT_EQ(app->gid, 1001u);
  EXPECT_EQ(app->home, "/home/app");
  EXPECT_EQ(app->groups, (std::vector<gid_t>{1001, 50, 10}));

  auto byid = resolve_user("1000:staff", passwd_, group_);
  ASSERT_TRUE(byid.ok());
  EXPECT_EQ(byid->uid, 1000u);
  EXPECT_EQ(byid->gid, 50u);

  auto unknown_uid = resolve_user("4242:4243", passwd_, group_);
  ASSERT_TRUE(unknown_uid.ok());
  EXPECT_EQ(unknown_uid->uid, 4242u);
  EXPECT_EQ(unknown_uid->gid, 4243u);
  EXPECT_EQ(unknown_uid->home, "/");
}

TEST_F(AgentUserDb, UnknownNamesAreErrors) {
  auto r = resolve_user("nobody-here", passwd_, group_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nobody-here"), std::string::npos);
  EXPECT_FALSE(resolve_user("app:nogroup", passwd_, group_).ok());
}

}  // namespace
}  // namespace moat::agent
