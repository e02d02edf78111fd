// Volumes and tmpfs mounts, host side: the moat.mount= contract between
// host and agent, the CLI flags, the QEMU devices and the resolution of a
// sandbox's mount list.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "agent/boot_config.h"
#include "moat/volumes.h"
#include "proto/guest_mount.h"
#include "sandbox/volumes.h"
#include "shim_contract/shim_config.h"
#include "store/moat_home.h"
#include "vm/qemu_command.h"

namespace moat {
namespace {

using proto::GuestMount;

std::string join(const std::vector<std::string>& v) {
  std::string all;
  for (const auto& a : v) all += a + " ";
  return all;
}

class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/moat-volumes-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~ScratchDir() { (void)store::remove_tree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(GuestMount, RoundTripsThroughTheCommandLineWord) {
  GuestMount v{GuestMount::Kind::kVirtiofs, "vol0", "/data dir/a,b", true, 0};
  std::string word = proto::encode_guest_mount(v);
  EXPECT_EQ(word, "virtiofs,vol0,2f64617461206469722f612c62,ro,0");
  auto back = proto::decode_guest_mount(word);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->tag, "vol0");
  EXPECT_EQ(back->path, "/data dir/a,b");
  EXPECT_TRUE(back->read_only);
  GuestMount t{GuestMount::Kind::kTmpfs, "", "/scratch", false, 16u << 20};
  EXPECT_EQ(proto::encode_guest_mount(t), "tmpfs,,2f73637261746368,rw,16777216");
  auto tb = proto::decode_guest_mount(proto::encode_guest_mount(t));
  ASSERT_TRUE(tb.ok());
  EXPECT_EQ(tb->kind, GuestMount::Kind::kTmpfs);
  EXPECT_EQ(tb->size_bytes, 16u << 20);
}

TEST(GuestMount, RejectsBrokenWords) {
  for (const char* bad : {"", "virtiofs", "virtiofs,vol0,2f,rw", "nfs,vol0,2f,rw,0", "virtiofs,,2f,rw,0",
                          "virtiofs,a/b,2f,rw,0", "virtiofs,vol0,2,rw,0", "virtiofs,vol0,zz,rw,0",
                          "virtiofs,vol0,61,rw,0", "virtiofs,vol0,2f00,rw,0", "virtiofs,vol0,2f,xx,0",
                          "virtiofs,vol0,2f,rw,-1", "virtiofs,vol0,2f,rw,99999999999999999999999",
                          "tmpfs,tag,2f,rw,0", "virtiofs,vol0,2f,rw,0,extra"}) {
    EXPECT_FALSE(proto::decode_guest_mount(bad).ok()) << bad;
  }
  EXPECT_FALSE(proto::decode_guest_mount("virtiofs," + std::string(37, 'a') + ",2f,rw,0").ok());
}

TEST(GuestMount, AgentReadsMountsAndReportsBadOnes) {
  auto c = agent::parse_boot_config("quiet moat.mount=virtiofs,vol0,2f64617461,rw,0 moat.mount=tmpfs,,2f74,ro,4096");
  ASSERT_EQ(c.mounts.size(), 2u);
  EXPECT_EQ(c.mounts[0].path, "/data");
  EXPECT_EQ(c.mounts[1].kind, GuestMount::Kind::kTmpfs);
  EXPECT_TRUE(c.mounts[1].read_only);
  EXPECT_EQ(c.mount_error, "");
  auto bad = agent::parse_boot_config("moat.mount=virtiofs,vol0,zz,rw,0");
  EXPECT_TRUE(bad.mounts.empty());
  EXPECT_EQ(bad.mount_error, "moat.mount=virtiofs,vol0,zz,rw,0: bad path encoding");
}

TEST(VolumeQemuCommand, SharesNeedSharedMemoryAndOneDeviceEach) {
  vm::VmSpec s;
  s.kernel = "/k";
  s.initrd = "/i";
  s.memory_mib = 512;
  std::string plain = join(vm::build_qemu_command(s));
  EXPECT_EQ(plain.find("share=on"), std::string::npos) << "private memory without shares";
  s.fs_shares = {{"vol0", 7}, {"a,b", 8}};
  s.mounts = {{GuestMount::Kind::kVirtiofs, "vol0", "/data", false, 0}};
  std::string all = join(vm::build_qemu_command(s));
  EXPECT_NE(all.find("-M microvm,acpi=off,x-option-roms=off,isa-serial=on,rtc=on,memory-backend=mem "), std::string::npos);
  EXPECT_NE(all.find("-object memory-backend-memfd,id=mem,size=512M,share=on "), std::string::npos);
  // Connected sockets QEMU inherits: no path for a jailed QEMU to reach.
  EXPECT_NE(all.find("-chardev socket,id=fs0,fd=7 -device vhost-user-fs-device,chardev=fs0,tag=vol0 "),
            std::string::npos);
  EXPECT_NE(all.find("-chardev socket,id=fs1,fd=8 -device vhost-user-fs-device,chardev=fs1,tag=a,,b "),
            std::string::npos);
  EXPECT_NE(vm::kernel_command_line(s).find(" moat.mount=virtiofs,vol0,2f64617461,rw,0"), std::string::npos);
}

TEST(VolumeFlags, ParsesVolumeAndTmpfsFlags) {
  auto v = parse_volume_mount("/srv/data:/data:ro");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->source, "/srv/data");
  EXPECT_EQ(v->guest_path, "/data");
  EXPECT_TRUE(v->read_only);
  auto n = parse_volume_mount("cache:/cache");
  ASSERT_TRUE(n.ok());
  EXPECT_FALSE(n->read_only);
  EXPECT_EQ(parse_volume_mount("/a:/b:rx").error().message,
            "-v /a:/b:rx: unknown or repeated option \"rx\" (use ro or rw, and size=SIZE)");
  EXPECT_EQ(parse_volume_mount("/a").error().message, "-v /a: expected SOURCE:GUEST_PATH[:OPTIONS] (ro, rw, size=SIZE)");
  EXPECT_FALSE(parse_volume_mount(":/b").ok());
  EXPECT_FALSE(parse_volume_mount("/a:/b:ro:x").ok());
  // ".." would move the mount elsewhere (/data/../etc is /etc); relative
  // paths have no meaning in the guest.
  EXPECT_EQ(parse_volume_mount("/tmp/d:/data/../etc").error().message,
            "-v /tmp/d:/data/../etc: the guest path \"/data/../etc\" must not contain \"..\"");
  EXPECT_EQ(parse_volume_mount("/tmp/d:/..").error().message,
            "-v /tmp/d:/..: the guest path \"/..\" must not contain \"..\"");
  EXPECT_EQ(parse_volume_mount("/tmp/d:data").error().message,
            "-v /tmp/d:data: the guest path \"data\" must be absolute");
  EXPECT_TRUE(parse_volume_mount("/tmp/d:/a..b/..c").ok());
  EXPECT_EQ(parse_tmpfs_mount("/x/../etc:1m").error().message,
            "--tmpfs /x/../etc:1m: the guest path \"/x/../etc\" must not contain \"..\"");
  EXPECT_EQ(parse_tmpfs_mount("scratch").error().message,
            "--tmpfs scratch: the guest path \"scratch\" must be absolute");
  auto t = parse_tmpfs_mount("/scratch:64m");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->size_bytes, 64u << 20);
  EXPECT_EQ(parse_tmpfs_mount("/s:size=1g")->size_bytes, 1ull << 30);
  EXPECT_EQ(parse_tmpfs_mount("/s")->size_bytes, 0u);
  EXPECT_EQ(parse_tmpfs_mount("/s:0").error().message, "--tmpfs /s:0: the size must be above 0");
  EXPECT_FALSE(parse_tmpfs_mount("/s:12q").ok());
  EXPECT_FALSE(parse_byte_size("99999999999999999g").ok());
  EXPECT_EQ(*parse_byte_size("4096"), 4096u);
  EXPECT_EQ(*parse_byte_size("2K"), 2048u);
}

TEST(VolumeFlags, SizeLimitsAreBoundedSizes) {
  auto v = parse_volume_mount("/srv/out:/out:size=1g");
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->size_bytes, 1ull << 30);
  EXPECT_FALSE(v->read_only);
  auto ro = parse_volume_mount("cache:/c:ro,size=64M");
  ASSERT_TRUE(ro.ok());
  EXPECT_TRUE(ro->read_only);
  EXPECT_EQ(ro->size_bytes, 64ull << 20);
  EXPECT_EQ(parse_volume_mount("/a:/b:size=4k,rw")->size_bytes, 4096u);
  EXPECT_EQ(parse_volume_mount("/a:/b:size=1024t")->size_bytes, 1ull << 50);
  EXPECT_EQ(parse_volume_mount("/a:/b")->size_bytes, 0u);
  EXPECT_EQ(parse_volume_mount("/a:/b:size=0").error().message,
            "-v /a:/b:size=0: the size must be between 4k and 1024t");
  EXPECT_EQ(parse_volume_mount("/a:/b:size=4095").error().message,
            "-v /a:/b:size=4095: the size must be between 4k and 1024t");
  EXPECT_EQ(parse_volume_mount("/a:/b:size=1025t").error().message,
            "-v /a:/b:size=1025t: the size must be between 4k and 1024t");
  EXPECT_EQ(parse_volume_mount("/a:/b:size=1gb").error().message,
            "-v /a:/b:size=1gb: bad size \"1gb\": give bytes, or a number with k, m, g or t (64m)");
  EXPECT_FALSE(parse_volume_mount("/a:/b:size=").ok());
  EXPECT_FALSE(parse_volume_mount("/a:/b:size=-1").ok());
  EXPECT_FALSE(parse_volume_mount("/a:/b:size=99999999999999999999").ok());
  EXPECT_EQ(parse_volume_mount("/a:/b:size=1m,size=2m").error().message,
            "-v /a:/b:size=1m,size=2m: unknown or repeated option \"size=2m\" (use ro or rw, and size=SIZE)");
  EXPECT_FALSE(parse_volume_mount("/a:/b:ro,rw").ok());
  EXPECT_FALSE(parse_volume_mount("/a:/b:ro,").ok());
}

TEST(VolumeNames, TellNamesFromPaths) {
  EXPECT_TRUE(is_volume_name("cache"));
  EXPECT_FALSE(is_volume_name("/srv/cache"));
  EXPECT_FALSE(is_volume_name("./cache"));
  EXPECT_FALSE(is_volume_name("a/b"));
  EXPECT_FALSE(is_volume_name(""));
}

TEST(VolumeResolution, CleansChecksAndCreatesNamedVolumes) {
  ScratchDir home, host;
  ASSERT_EQ(::mkdir((host.path() + "/dir").c_str(), 0755), 0);
  std::ofstream(host.path() + "/file") << "x";
  auto r = sandbox::resolve_volume_mounts(home.path(),
                                          {{host.path() + "/dir/../dir", "/data/./x/", true}, {"cache", "/cache", false}},
                                          {{"/tmp2", 0}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].source, host.path() + "/dir");
  EXPECT_EQ((*r)[0].guest_path, "/data/x");
  EXPECT_EQ((*r)[1].source, "cache");
  struct stat st {};
  EXPECT_EQ(::stat(sandbox::volume_data_path(home.path(), "cache").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));

  auto err = [&](std::vector<VolumeMount> v, std::vector<TmpfsMount> t = {}) {
    auto res = sandbox::resolve_volume_mounts(home.path(), v, t);
    return res.ok() ? std::string("ok") : res.error().message;
  };
  EXPECT_EQ(err({{host.path() + "/missing", "/d", false}}),
            "volume source " + host.path() + "/missing: No such file or directory");
  EXPECT_EQ(err({{host.path() + "/file", "/d", false}}), "volume source " + host.path() + "/file is not a directory");
  EXPECT_EQ(err({{"cache", "/", false}}), "volume \"/\": cannot mount over the guest's /");
  EXPECT_EQ(err({{"cache", "data", false}}), "volume \"data\": the guest path must be absolute");
  EXPECT_EQ(err({{"cache", "/data/../etc", false}}), "volume \"/data/../etc\": the guest path must not contain \"..\"");
  EXPECT_EQ(err({{"cache", "/data/..", false}}), "volume \"/data/..\": the guest path must not contain \"..\"");
  EXPECT_EQ(err({{"cache", "/a..b/c..", false}}), "ok");
  auto tmpfs = sandbox::resolve_tmpfs_mounts({{"/x/../etc", 0}});
  ASSERT_FALSE(tmpfs.ok());
  EXPECT_EQ(tmpfs.error().message, "--tmpfs \"/x/../etc\": the guest path must not contain \"..\"");
  EXPECT_EQ(err({{"cache", "/d", false}, {"other", "/d/", false}}), "two mounts at /d");
  EXPECT_EQ(err({{"cache", "/d", false}}, {{"/d", 0}}), "two mounts at /d");
  EXPECT_EQ(err({{"-bad", "/d", false}}).substr(0, 28), "invalid volume name \"-bad\": ");
  // The library bounds a size limit as the flag does.
  EXPECT_EQ(err({{"cache", "/d", false, 100}}), "volume for /d: the size limit must be between 4 KiB and 1 PiB");
  EXPECT_EQ(err({{"cache", "/d", false, (1ull << 50) + 1}}), "volume for /d: the size limit must be between 4 KiB and 1 PiB");
  auto sized = sandbox::resolve_volume_mounts(home.path(), {{"cache", "/d", false, 1 << 20}}, {});
  ASSERT_TRUE(sized.ok());
  EXPECT_EQ((*sized)[0].size_bytes, 1u << 20);
}

TEST(VolumeResolution, SharesBecomeShimVolumesAndGuestMounts) {
  ScratchDir home;
  shim::ShimConfig cfg;
  cfg.vm.kernel = "/k";
  std::vector<VolumeMount> v = {{"/srv/x", "/x", true}, {"cache", "/cache", false, 1 << 30}};
  ASSERT_TRUE(sandbox::add_sandbox_mounts(home.path(), v, {{"/scratch", 1 << 20}}, cfg).ok());
  ASSERT_EQ(cfg.volumes.size(), 2u);
  EXPECT_EQ(cfg.volumes[0].tag, "vol0");
  EXPECT_EQ(cfg.volumes[0].host_path, "/srv/x");
  EXPECT_TRUE(cfg.volumes[0].read_only);
  EXPECT_EQ(cfg.volumes[1].host_path, home.path() + "/volumes/cache/data");
  ASSERT_EQ(cfg.vm.mounts.size(), 3u);
  EXPECT_EQ(cfg.vm.mounts[2].kind, GuestMount::Kind::kTmpfs);
  // The shim config carries both across the process boundary.
  std::string path = home.path() + "/config.json";
  ASSERT_TRUE(shim::write_shim_config(cfg, path).ok());
  auto back = shim::read_shim_config(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->volumes.size(), 2u);
  EXPECT_EQ(back->volumes[1].host_path, cfg.volumes[1].host_path);
  EXPECT_EQ(back->volumes[0].size_bytes, 0u);
  EXPECT_EQ(back->volumes[1].size_bytes, 1u << 30);
  ASSERT_EQ(back->vm.mounts.size(), 3u);
  EXPECT_EQ(back->vm.mounts[0].path, "/x");
  EXPECT_TRUE(back->vm.mounts[0].read_only);
  // Paths too long for the kernel command line are refused up front.
  shim::ShimConfig big;
  std::vector<TmpfsMount> many;
  for (int i = 0; i < 8; ++i) many.push_back({"/" + std::string(200, static_cast<char>('a' + i)), 0});
  auto st = sandbox::add_sandbox_mounts(home.path(), {}, many, big);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("too long together for the guest kernel's command line"), std::string::npos);
}

TEST(ShimConfig, PathsAndHostnameThatAreNotUtf8RoundTrip) {
  // -v $'/tmp/caf\xe9:/d', --hostname $'\xe9', a $MOAT_HOME with such bytes.
  ScratchDir home;
  const std::string cafe = "caf\xe9";
  shim::ShimConfig cfg;
  cfg.sandbox_id = "aaaaaaaaaaaa";
  cfg.dir = home.path() + "/" + cafe;
  cfg.vm.hostname = "\xe9";
  cfg.vm.disks = {{"/disk/" + cafe, true}};
  cfg.vm.extra_kernel_args = {"a=" + cafe};
  cfg.vm.mounts = {GuestMount{GuestMount::Kind::kVirtiofs, "v0", "/d" + cafe, false, 0}};
  cfg.volumes = {{"v0", "/tmp/" + cafe, false}};
  std::string path = home.path() + "/config.json";
  ASSERT_TRUE(shim::write_shim_config(cfg, path).ok());
  auto back = shim::read_shim_config(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->dir, cfg.dir);
  EXPECT_EQ(back->vm.hostname, "\xe9");
  ASSERT_EQ(back->vm.disks.size(), 1u);
  EXPECT_EQ(back->vm.disks[0].path, "/disk/" + cafe);
  EXPECT_EQ(back->vm.extra_kernel_args, cfg.vm.extra_kernel_args);
  ASSERT_EQ(back->vm.mounts.size(), 1u);
  EXPECT_EQ(back->vm.mounts[0].path, "/d" + cafe);
  ASSERT_EQ(back->volumes.size(), 1u);
  EXPECT_EQ(back->volumes[0].host_path, "/tmp/" + cafe);
}

}  // namespace
}  // namespace moat
