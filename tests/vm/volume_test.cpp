// Volumes in sandboxes, end to end: host directories and named volumes
// served by the shim over virtio-fs, tmpfs mounts, and what a guest must
// not be able to do through them.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

using Json = nlohmann::json;

class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/moat-vol-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~ScratchDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_host(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_host(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

// A one-shot `moat run` on busybox with extra flags, running `script` in sh.
Outcome run_sh(const std::vector<std::string>& flags, const std::string& script) {
  std::vector<std::string> args = {"run", "--rootfs-dir", busybox_rootfs()};
  args.insert(args.end(), flags.begin(), flags.end());
  args.insert(args.end(), {"--", "sh", "-c", script});
  return run_moat(args);
}

Outcome exec_sh(const std::string& sandbox, const std::string& script) {
  return run_moat({"exec", sandbox, "--", "sh", "-c", script});
}

std::vector<std::string> host_listing(const std::string& dir) {
  auto o = std::system(("ls -A '" + dir + "' > '" + dir + ".ls' 2>&1").c_str());
  (void)o;
  std::vector<std::string> names;
  std::istringstream in(read_host(dir + ".ls"));
  for (std::string line; std::getline(in, line);) names.push_back(line);
  ::unlink((dir + ".ls").c_str());
  return names;
}

// A volume with size=1m holds 1 MiB: df in the guest shows the limit, a
// write past it fails with ENOSPC, and removing a file gives the room back.
TEST(VmVolumes, ASizeLimitIsEnforcedWithEnospcAndShownByDf) {
  ScratchDir host;
  auto o = run_sh({"-v", host.path() + ":/data:size=1m"},
                  "df -k /data | tail -1 | awk '{print $2}'; "
                  "dd if=/dev/zero of=/data/big bs=64k count=32 2>&1 | grep -o 'No space left on device'; "
                  "wc -c < /data/big; rm /data/big; "
                  "dd if=/dev/zero of=/data/small bs=64k count=8 2>/dev/null && echo fits");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "1024\nNo space left on device\n1048576\nfits\n");
  EXPECT_EQ(read_host(host.path() + "/small").size(), 512u << 10);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmVolumes, HostDirectoryIsSharedBothWays) {
  ScratchDir host;
  std::string big = random_bytes(3 << 20);
  write_host(host.path() + "/greeting", "hello from the host\n");
  write_host(host.path() + "/big.bin", big);
  std::string id = create_sandbox({"-v", host.path() + ":/data"});
  auto first = exec_sh(id, "cat /data/greeting; sha256sum /data/big.bin | cut -d' ' -f1; "
                           "printf 'written by the guest' > /data/out; mkdir -p /data/d1/d2; echo deep > /data/d1/d2/f");
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "hello from the host\n" + sha256_hex(big) + "\n");
  EXPECT_EQ(read_host(host.path() + "/out"), "written by the guest");
  EXPECT_EQ(read_host(host.path() + "/d1/d2/f"), "deep\n");
  // A file the guest writes (write-only opens bypass the guest's page cache)
  // reads back the same in the guest and on the host, appended to as well.
  auto random = exec_sh(id, "dd if=/dev/urandom of=/data/r bs=64k count=40 2>/dev/null && "
                            "dd if=/dev/urandom bs=1000 count=3 2>/dev/null >> /data/r && "
                            "sha256sum /data/r | cut -d' ' -f1; wc -c < /data/r");
  std::string host_random = read_host(host.path() + "/r");
  EXPECT_EQ(random.out, sha256_hex(host_random) + "\n2624440\n") << random.err;
  EXPECT_EQ(host_random.size(), 2624440u);
  // A host change while the sandbox runs shows in the guest.
  write_host(host.path() + "/later", "after boot\n");
  ::unlink((host.path() + "/greeting").c_str());
  ::sleep(2);  // beyond the server's attribute and entry lifetimes
  auto second = exec_sh(id, "cat /data/later; ls /data");
  EXPECT_EQ(second.out, "after boot\nbig.bin\nd1\nlater\nout\nr\n") << second.err;
  // The volume survives a restart of the sandbox.
  EXPECT_EQ(run_moat({"restart", id}).exit_code, 0);
  EXPECT_EQ(exec_sh(id, "cat /data/out").out, "written by the guest");
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
  EXPECT_EQ(read_host(host.path() + "/out"), "written by the guest");  // removing the sandbox keeps the data
}

// A stop that kills the VM instead of powering it off (`run --rm`, whose
// disk is deleted; `stop --timeout 0`; `rm -f`) first has the agent kill the guest's
// processes and flush: bytes a live process put in a shared mapping are only
// dirty pages in the guest until then, on a volume as on a kept disk.
TEST(VmVolumes, BytesDirtiedThroughMmapOutliveAStopThatKills) {
  ScratchDir host;
  std::string writer = host.path() + "/mmap_writer";
  ASSERT_EQ(std::system(("cp '" MOAT_MMAP_WRITER "' '" + writer + "'").c_str()), 0);
  // The writer stays alive, its mapping open, when the command ends.
  auto start_writer = [](const std::string& path, const std::string& text) {
    std::string said = "/tmp/said-" + text;
    return "/data/mmap_writer " + path + " " + text + " < /dev/null > " + said + " 2>&1 & " +
           "while [ ! -s " + said + " ]; do sleep 0.1; done; cat " + said;
  };
  auto run = run_sh({"-v", host.path() + ":/data"}, start_writer("/data/by-run", "through-a-mapping"));
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "written\n");
  EXPECT_EQ(read_host(host.path() + "/by-run"), "through-a-mapping");

  std::string id = create_sandbox({"-v", host.path() + ":/data"});
  auto exec = exec_sh(id, start_writer("/data/by-exec", "on-the-volume") + "; " +
                              start_writer("/root/on-disk", "on-the-kept-disk"));
  EXPECT_EQ(exec.out, "written\nwritten\n") << exec.err;
  EXPECT_EQ(run_moat({"stop", "--timeout", "0", id}).exit_code, 0);
  EXPECT_EQ(read_host(host.path() + "/by-exec"), "on-the-volume");
  EXPECT_EQ(run_moat({"start", id}).exit_code, 0);
  EXPECT_EQ(exec_sh(id, "cat /root/on-disk").out, "on-the-kept-disk");
  // Removing it running: its disk goes, its volume's bytes stay.
  EXPECT_EQ(exec_sh(id, start_writer("/data/by-rm", "before-the-removal")).out, "written\n");
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
  EXPECT_EQ(read_host(host.path() + "/by-rm"), "before-the-removal");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmVolumes, OwnershipIsVirtualizedInAnXattr) {
  ScratchDir host;
  auto o = run_sh({"-v", host.path() + ":/data"},
                  "cd /data && echo x > owned && chown 1000:1000 owned && chmod 4750 owned && "
                  "stat -c '%u:%g %a' owned && mknod null c 1 3 && stat -c '%F %t:%T' null && "
                  "mkdir dir && chown 123:456 dir && stat -c '%u:%g %F' dir");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "1000:1000 4750\ncharacter special file 1:3\n123:456 directory\n");
  struct stat st {};
  ASSERT_EQ(::stat((host.path() + "/owned").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::geteuid());  // the host file stays the host user's
  EXPECT_EQ(st.st_mode & 06000, 0u);   // and gets no setuid bit on the host
  char value[256];
  EXPECT_GT(::getxattr((host.path() + "/owned").c_str(), "user.moat.stat", value, sizeof value), 0);
  ASSERT_EQ(::stat((host.path() + "/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode)) << "a device node made by the guest is a plain file on the host";
  // The guest can neither see nor forge the xattr that holds this.
  auto peek = run_sh({"-v", host.path() + ":/data"},
                     "stat -c '%u:%g' /data/owned; setfattr -n user.moat.stat -v 0 /data/owned 2>/dev/null "
                     "&& echo forged; getfattr -d /data/owned 2>/dev/null | grep -c moat");
  EXPECT_EQ(peek.out.substr(0, 10), "1000:1000\n") << peek.out << peek.err;
  EXPECT_EQ(peek.out.find("forged"), std::string::npos);
}

TEST(VmVolumes, ReadOnlyIsRefusedByTheServer) {
  ScratchDir host;
  write_host(host.path() + "/keep", "original\n");
  auto o = run_sh({"-v", host.path() + ":/ro:ro"},
                  "echo x > /ro/new; echo rc=$?; "
                  // Even a guest root that remounts read-write is refused by the server.
                  "mount -o remount,rw /ro && echo remounted; "
                  "echo x > /ro/new; echo rc=$?; echo y >> /ro/keep; echo rc=$?; rm /ro/keep; echo rc=$?; "
                  "mkdir /ro/d; echo rc=$?; chmod 777 /ro/keep; echo rc=$?; cat /ro/keep");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "rc=1\nremounted\nrc=1\nrc=1\nrc=1\nrc=1\nrc=1\noriginal\n");
  EXPECT_NE(o.err.find("Read-only file system"), std::string::npos) << o.err;
  EXPECT_EQ(host_listing(host.path()), std::vector<std::string>{"keep"});
  EXPECT_EQ(read_host(host.path() + "/keep"), "original\n");
}

TEST(VmVolumes, GuestSymlinksNeverReachHostFilesOutsideTheVolume) {
  ScratchDir top;
  std::string vol = top.path() + "/vol", outside = top.path() + "/outside";
  ASSERT_EQ(::mkdir(vol.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  write_host(outside + "/secret", "host secret\n");
  // A link the host put there resolves in the guest's namespace, not the host's.
  ASSERT_EQ(::symlink("/etc", (vol + "/hostlink").c_str()), 0);
  auto o = run_sh({"-v", vol + ":/data", "--hostname", "guestbox"},
                  "cd /data && ln -s / root && ln -s .. up && ln -s " + outside + "/secret direct && "
                  "cat up/outside/secret; cat root" + outside + "/secret; cat direct; "
                  "echo pwned > direct; echo pwned > up/outside/secret; echo pwned > root" + outside + "/secret; "
                  "cat hostlink/hostname; readlink direct");
  EXPECT_EQ(o.out, "guestbox\n" + outside + "/secret\n") << o.err;
  EXPECT_EQ(o.out.find("host secret"), std::string::npos);
  EXPECT_EQ(read_host(outside + "/secret"), "host secret\n");
  EXPECT_EQ(host_listing(outside), std::vector<std::string>{"secret"});
  EXPECT_EQ(host_listing(top.path()), (std::vector<std::string>{"outside", "vol"}));
  // The guest's links are links on the host too, never followed into.
  struct stat st {};
  ASSERT_EQ(::lstat((vol + "/up").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_EQ(::lstat((vol + "/direct").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

// A guest making thousands of directories in a volume, then a file in each
// (which the server must create in directory nodes long closed), with the
// shim limited to 256 descriptors: it gives 128 to the volume's nodes
// (shim/volume_servers.cpp), closes the least recently used and reopens them
// when the guest comes back to them, instead of answering ENFILE.
TEST(VmVolumes, ThousandsOfDirectoriesWithFewDescriptors) {
  ScratchDir host;
  set_child_nofile_limit(256);
  auto o = run_sh({"-v", host.path() + ":/data"},
                  "cd /data || exit 1; i=0; while [ $i -lt 3000 ]; do set -- \"$@\" m$i; i=$((i+1)); done; "
                  "mkdir \"$@\" || exit 1; ls /data | wc -l; "
                  "for d in \"$@\"; do echo $d > /data/$d/f || exit 1; done; "
                  "cat /data/m*/f | wc -l; cat /data/m0/f /data/m2999/f");
  set_child_nofile_limit(0);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "3000\n3000\nm0\nm2999\n");
  EXPECT_EQ(host_listing(host.path()).size(), 3000u);
  EXPECT_EQ(read_host(host.path() + "/m1234/f"), "m1234\n");
}

// A guest that holds more files open than its share of the shim's
// descriptors gets ENFILE for the extra ones, so the shim keeps descriptors
// for its clients: exec and rm -f still work. (With 256 descriptors the
// volume's share is 128: 64 for nodes, 64 for open files.)
TEST(VmVolumes, FilesHeldOpenCannotExhaustTheShim) {
  ScratchDir host;
  for (int i = 0; i < 200; ++i) std::ofstream(host.path() + "/f" + std::to_string(i)) << i;
  set_child_nofile_limit(256);
  std::string id = create_sandbox({"-v", host.path() + ":/data"});
  set_child_nofile_limit(0);
  // Many opens of one file: one node, a handle each.
  auto held = exec_sh(id,
                      "i=0; while [ $i -lt 200 ]; do sleep 1000 </data/f0 >/dev/null 2>&1 & i=$((i+1)); done; "
                      "sleep 1; ls -l /proc/[0-9]*/fd/0 2>/dev/null | grep -c ' /data/f0'");
  // At most the 64 handles, less any the guest's kernel holds itself.
  int count = std::atoi(held.out.c_str());
  EXPECT_TRUE(count >= 56 && count <= 64) << held.out;
  EXPECT_NE(held.err.find("can't open /data/f0: Too many open files in system"), std::string::npos) << held.err;
  auto again = exec_sh(id, "echo still serving");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "still serving\n");
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
  EXPECT_TRUE(processes_mentioning(test_home() + "/sandboxes/" + id).empty());
}

TEST(VmVolumes, NamedVolumeIsSharedBetweenSandboxes) {
  EXPECT_EQ(run_moat({"volume", "create", "--label", "team=a", "shared"}).out, "shared\n");
  auto dup = run_moat({"volume", "create", "shared"});
  EXPECT_EQ(dup.exit_code, 125);
  EXPECT_EQ(dup.err, "moat: volume \"shared\" already exists\n");
  std::string a = create_sandbox({"--name", "vol-a", "-v", "shared:/shared"});
  std::string b = create_sandbox({"--name", "vol-b", "-v", "shared:/mnt/s:ro"});
  EXPECT_EQ(exec_sh("vol-a", "echo from-a > /shared/note").exit_code, 0);
  EXPECT_EQ(exec_sh("vol-b", "cat /mnt/s/note").out, "from-a\n");
  auto b_write = exec_sh("vol-b", "echo from-b > /mnt/s/other");
  EXPECT_NE(b_write.err.find("Read-only file system"), std::string::npos) << b_write.err;
  EXPECT_EQ(exec_sh("vol-a", "echo again >> /shared/note; cat /shared/note").out, "from-a\nagain\n");
  // vol-b looked the file up a moment ago: its attributes (the size) may be
  // cached for up to the server's 1 s lifetime (docs/volumes.md).
  ::sleep(2);
  EXPECT_EQ(exec_sh("vol-b", "cat /mnt/s/note").out, "from-a\nagain\n");

  auto ls = Json::parse(run_moat({"volume", "ls", "--format", "json"}).out, nullptr, false);
  ASSERT_TRUE(ls.is_array());
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0]["name"], "shared");
  EXPECT_EQ(ls[0]["labels"]["team"], "a");
  EXPECT_EQ(ls[0]["used_by"], Json::array({"vol-a", "vol-b"}));
  std::string data = ls[0]["path"];
  EXPECT_EQ(read_host(data + "/note"), "from-a\nagain\n");
  auto in_use = run_moat({"volume", "rm", "shared"});
  EXPECT_EQ(in_use.exit_code, 125);
  EXPECT_EQ(in_use.err, "moat: volume shared is in use by vol-a, vol-b; remove those sandboxes first, or use -f\n");
  EXPECT_EQ(run_moat({"rm", "-f", a, b}).exit_code, 0);
  EXPECT_EQ(run_moat({"volume", "ls", "-q"}).out, "shared\n");
  EXPECT_EQ(run_moat({"volume", "rm", "shared"}).out, "shared\n");
  EXPECT_EQ(run_moat({"volume", "ls", "-q"}).out, "");
  struct stat st {};
  EXPECT_NE(::stat(data.c_str(), &st), 0);
  auto gone = run_moat({"volume", "inspect", "shared"});
  EXPECT_EQ(gone.exit_code, 125);
  EXPECT_NE(gone.err.find("no such volume: shared"), std::string::npos);
}

TEST(VmVolumes, RunCreatesAMissingNamedVolume) {
  auto o = run_sh({"-v", "autovol:/v"}, "echo kept > /v/f");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  auto again = run_sh({"-v", "autovol:/w"}, "cat /w/f");
  EXPECT_EQ(again.out, "kept\n") << again.err;
  // `run` removed its sandboxes, so the volume is free to go.
  EXPECT_EQ(run_moat({"volume", "rm", "autovol"}).exit_code, 0);
}

TEST(VmVolumes, TmpfsHasItsSizeAndIsEmptyEachBoot) {
  auto o = run_sh({"--tmpfs", "/scratch:16m", "--tmpfs", "/other"},
                  "grep -E ' /(scratch|other) ' /proc/mounts | cut -d' ' -f1-3; "
                  "df -k /scratch | tail -1 | awk '{print $2}'; "
                  "dd if=/dev/zero of=/scratch/fill bs=1M count=20 2>&1 | grep -c 'No space left'");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "tmpfs /scratch tmpfs\ntmpfs /other tmpfs\n16384\n1\n");
}

TEST(VmVolumes, BadVolumeFlagsAreRefusedBeforeAnythingStarts) {
  ScratchDir host;
  write_host(host.path() + "/file", "x");
  auto check = [&](std::vector<std::string> flags, const std::string& message) {
    auto o = run_sh(flags, "true");
    EXPECT_EQ(o.exit_code, 125) << o.err;
    EXPECT_EQ(o.err, "moat: " + message + "\n");
  };
  check({"-v", host.path() + "/missing:/d"}, "volume source " + host.path() + "/missing: No such file or directory");
  check({"-v", host.path() + "/file:/d"}, "volume source " + host.path() + "/file is not a directory");
  check({"-v", host.path()}, "-v " + host.path() + ": expected SOURCE:GUEST_PATH[:OPTIONS] (ro, rw, size=SIZE)");
  check({"-v", host.path() + ":rel"}, "-v " + host.path() + ":rel: the guest path \"rel\" must be absolute");
  check({"-v", host.path() + ":/d/../etc"}, "-v " + host.path() + ":/d/../etc: the guest path \"/d/../etc\" must not contain \"..\"");
  check({"-v", host.path() + ":/d:rx"},
        "-v " + host.path() + ":/d:rx: unknown or repeated option \"rx\" (use ro or rw, and size=SIZE)");
  check({"-v", host.path() + ":/d:size=0"}, "-v " + host.path() + ":/d:size=0: the size must be between 4k and 1024t");
  check({"-v", host.path() + ":/d:size=1x"},
        "-v " + host.path() + ":/d:size=1x: bad size \"1x\": give bytes, or a number with k, m, g or t (64m)");
  check({"-v", host.path() + ":/"}, "volume \"/\": cannot mount over the guest's /");
  check({"--tmpfs", "/t:0"}, "--tmpfs /t:0: the size must be above 0");
  check({"--tmpfs", "/t", "-v", host.path() + ":/t"}, "two mounts at /t");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

}  // namespace
}  // namespace moat::test
