// The I/O weight's file and value (src/jail/cgroup.h io_weight_setting), on
// fake group directories: this project's CI host has no kernel with an I/O
// weight, so the real groups can only show the refusal (tests/vm).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "jail/cgroup.h"

namespace moat::jail {
namespace {

class FakeGroup : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-cgroup-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void touch(const std::string& name) { std::ofstream(dir_ + "/" + name) << ""; }
  std::string setting(CgroupVersion v, std::uint32_t weight) {
    auto s = io_weight_setting(v, dir_, weight);
    if (!s.ok()) return "error " + std::to_string(s.error().code) + ": " + s.error().message;
    return s->first.substr(dir_.size() + 1) + " " + s->second;
  }
  std::string dir_;
};

TEST_F(FakeGroup, BfqIsPreferredAndItsRangeClamped) {
  touch("io.bfq.weight");
  touch("io.weight");
  EXPECT_EQ(setting(CgroupVersion::kV2, 100), "io.bfq.weight 100");
  EXPECT_EQ(setting(CgroupVersion::kV2, 10000), "io.bfq.weight 1000");
  EXPECT_EQ(setting(CgroupVersion::kV2, 1), "io.bfq.weight 1");
  touch("blkio.bfq.weight");
  EXPECT_EQ(setting(CgroupVersion::kV1, 5000), "blkio.bfq.weight 1000");
}

TEST_F(FakeGroup, WithoutBfqTheOtherWeightTakesItsOwnRange) {
  touch("io.weight");
  EXPECT_EQ(setting(CgroupVersion::kV2, 10000), "io.weight 10000");
  EXPECT_EQ(setting(CgroupVersion::kV2, 1), "io.weight 1");
  touch("blkio.weight");
  EXPECT_EQ(setting(CgroupVersion::kV1, 1), "blkio.weight 10");
  EXPECT_EQ(setting(CgroupVersion::kV1, 300), "blkio.weight 300");
  EXPECT_EQ(setting(CgroupVersion::kV1, 9000), "blkio.weight 1000");
}

TEST_F(FakeGroup, NoWeightFileIsRefusedSayingWhy) {
  touch("blkio.throttle.read_bps_device");  // what this CI host's v1 blkio has
  EXPECT_EQ(setting(CgroupVersion::kV1, 100),
            "error " + std::to_string(ENOTSUP) +
                ": --io-weight: this host's kernel offers no I/O weight (cgroup v1's blkio has neither "
                "blkio.bfq.weight nor blkio.weight: a weight needs the BFQ I/O scheduler or CFQ); leave --io-weight "
                "out here");
  EXPECT_EQ(setting(CgroupVersion::kV2, 100),
            "error " + std::to_string(ENOTSUP) +
                ": --io-weight: this host's kernel offers no I/O weight (cgroup v2's io controller has neither "
                "io.bfq.weight nor io.weight: a weight needs the BFQ I/O scheduler or io.cost); leave --io-weight out "
                "here");
}

}  // namespace
}  // namespace moat::jail
