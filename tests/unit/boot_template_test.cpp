// Warm start's template key (sandbox/boot_template.h): what a booted guest
// depends on changes it, what a restore sets anew does not, and a sandbox
// that cannot use a template gets none.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "sandbox/boot_template.h"

namespace moat::sandbox {
namespace {

class BootTemplateKey : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("moat-template-key-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    for (const char* f : {"lower.erofs", "upper.ext4", "vmlinux", "initramfs.cpio", "qemu"})
      std::ofstream(dir_ / f) << f;
    cfg_.vm.disks = {{(dir_ / "lower.erofs").string(), true}, {(dir_ / "upper.ext4").string(), false}};
    cfg_.vm.root_mode = "overlay";
    cfg_.vm.lower_fs = "erofs";
    cfg_.vm.kernel = (dir_ / "vmlinux").string();
    cfg_.vm.initrd = (dir_ / "initramfs.cpio").string();
    cfg_.vm.qemu = (dir_ / "qemu").string();
    r_.info.disk_size_mib = 4096;
    ::unsetenv("MOAT_WARM_START");
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    ::unsetenv("MOAT_WARM_START");
  }
  std::string key() const { return boot_template_key(o_, r_, cfg_, false); }

  std::filesystem::path dir_;
  SandboxOptions o_;
  SandboxRecord r_;
  shim::ShimConfig cfg_;
};

TEST_F(BootTemplateKey, IsStableAndIgnoresWhatARestoreSetsAnew) {
  std::string k = key();
  ASSERT_EQ(k.size(), 32u);
  EXPECT_EQ(k.find_first_not_of("0123456789abcdef"), std::string::npos) << k;
  EXPECT_EQ(key(), k);
  cfg_.vm.hostname = "another";
  r_.info.name = "another";
  cfg_.idle_timeout_s = 60;
  cfg_.vm.cpu_weight = 500;
  o_.auto_remove = true;
  EXPECT_EQ(key(), k) << "hostname, limits and lifetime are not in the guest's boot";
}

TEST_F(BootTemplateKey, ChangesWithWhatTheBootedGuestDependsOn) {
  const std::string k = key();
  auto changed = [&](auto change) {
    auto saved_cfg = cfg_;
    auto saved_r = r_;
    change();
    std::string other = key();
    cfg_ = saved_cfg;
    r_ = saved_r;
    return other != k && other.size() == 32;
  };
  EXPECT_TRUE(changed([&] { cfg_.vm.cpus = 2; }));
  EXPECT_TRUE(changed([&] { cfg_.vm.memory_mib = 512; }));
  EXPECT_TRUE(changed([&] { r_.info.disk_size_mib = 8192; }));
  EXPECT_TRUE(changed([&] { cfg_.vm.accel = vm::Accel::kKvm; }));
  EXPECT_TRUE(changed([&] { cfg_.vm.lower_fs = "ext4"; }));
  EXPECT_TRUE(changed([&] { r_.info.network.mode = NetworkMode::kNone; }));
  EXPECT_TRUE(changed([&] { cfg_.vm.mounts.push_back({proto::GuestMount::Kind::kTmpfs, "", "/scratch", false, 0}); }));
  EXPECT_TRUE(changed([&] { cfg_.vm.disks[0].path = (dir_ / "upper.ext4").string(); }));
  // A rebuilt kernel, initramfs or QEMU, or a re-made root, is another key.
  for (const char* f : {"vmlinux", "initramfs.cpio", "qemu", "lower.erofs"}) {
    EXPECT_TRUE(changed([&] {
      std::filesystem::remove(dir_ / f);
      std::ofstream(dir_ / f) << "rebuilt " << f;
    })) << f;
  }
}

TEST_F(BootTemplateKey, NoneForWhatCannotStartWarm) {
  ASSERT_FALSE(key().empty());
  {
    SandboxOptions cold = o_;
    cold.warm_start = false;
    EXPECT_EQ(boot_template_key(cold, r_, cfg_, false), "");
  }
  EXPECT_EQ(boot_template_key(o_, r_, cfg_, /*tls_trust_written=*/true), "");
  {
    SandboxOptions patched = o_;
    patched.patches.push_back(RootPatch{});
    EXPECT_EQ(boot_template_key(patched, r_, cfg_, false), "");
  }
  {
    SandboxRecord with_volume = r_;
    with_volume.info.volumes.push_back(VolumeMount{});
    EXPECT_EQ(boot_template_key(o_, with_volume, cfg_, false), "");
  }
  {
    SandboxRecord from_snapshot = r_;
    from_snapshot.info.snapshot = "abc";
    EXPECT_EQ(boot_template_key(o_, from_snapshot, cfg_, false), "");
  }
  {
    shim::ShimConfig rw = cfg_;
    rw.vm.root_mode = "rw";
    rw.vm.disks.pop_back();
    EXPECT_EQ(boot_template_key(o_, r_, rw, false), "");
  }
  ::setenv("MOAT_WARM_START", "0", 1);
  EXPECT_EQ(key(), "") << "off for the whole process";
  ::setenv("MOAT_WARM_START", "1", 1);
  EXPECT_FALSE(key().empty());
}

}  // namespace
}  // namespace moat::sandbox
