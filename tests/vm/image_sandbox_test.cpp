// Sandboxes from OCI images pulled from a local registry: the Debian +
// python3 fixture (tests/fixtures/make-debian-python.sh) and an image
// derived from it with Env, WorkingDir, User, Entrypoint and Cmd set.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "image/fixture_harness.h"
#include "image/registry_harness.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

using Json = nlohmann::json;
namespace it = moat::image::testing;

class VmImageSandbox : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = test_home() + "/image-fixtures";
    std::filesystem::create_directories(scratch_);
    std::string err;
    std::string layout = it::debian_python_layout(scratch_, &err);
    ASSERT_FALSE(layout.empty()) << err;
    std::string derived = scratch_ + "/derived";
    auto d = it::run({"python3", std::string(MOAT_VM_TEST_DIR) + "/derive_image.py", layout, "python3", derived, "app",
                      "--env", "GREETING=hello from the image", "--env", "PYTHONDONTWRITEBYTECODE=2", "--workdir",
                      "/srv/app/", "--user", "nobody", "--entrypoint", "[\"python3\", \"-c\"]", "--cmd",
                      "[\"print('cmd of the image')\"]"},
                     {}, scratch_);
    ASSERT_EQ(d.exit_code, 0) << d.err;
    registry_ = new it::LocalRegistry();
    std::string started = registry_->start(scratch_ + "/registry");
    ASSERT_EQ(started, "") << started;
    python_ = registry_->host() + "/test/debian-python3:latest";
    app_ = registry_->host() + "/test/app:1";
    auto p1 = it::skopeo_push(layout, "python3", python_, scratch_);
    ASSERT_EQ(p1.exit_code, 0) << p1.err;
    auto p2 = it::skopeo_push(derived, "app", app_, scratch_);
    ASSERT_EQ(p2.exit_code, 0) << p2.err;
  }
  static void TearDownTestSuite() {
    if (registry_) registry_->stop();
    delete registry_;
    registry_ = nullptr;
  }

  static std::string scratch_;
  static it::LocalRegistry* registry_;
  static std::string python_;
  static std::string app_;
};

std::string VmImageSandbox::scratch_;
it::LocalRegistry* VmImageSandbox::registry_ = nullptr;
std::string VmImageSandbox::python_;
std::string VmImageSandbox::app_;

std::string trimmed(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return sha256_hex(ss.str());
}

TEST_F(VmImageSandbox, RunsPythonFromTheDebianImage) {
  auto o = run_moat({"run", "--insecure", python_, "--", "python3", "-c", "import sys; print(sys.version)"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(std::regex_match(o.out, std::regex("3\\.11\\.[0-9]+ \\(main, [^\n]*\\) \\[GCC [^\n]*\\]\n"))) << o.out;
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST_F(VmImageSandbox, ImageConfigGivesCommandEnvWorkdirAndUser) {
  // Entrypoint + Cmd of the image.
  auto cmd = run_moat({"run", "--insecure", app_});
  EXPECT_EQ(cmd.exit_code, 0) << cmd.err;
  EXPECT_EQ(cmd.out, "cmd of the image\n");
  // A command replaces Cmd only; --entrypoint replaces the entrypoint.
  auto args = run_moat({"run", "--insecure", app_, "import os; print(os.environ['GREETING'], os.getcwd(), os.getuid())"});
  EXPECT_EQ(args.exit_code, 0) << args.err;
  EXPECT_EQ(args.out, "hello from the image /srv/app 65534\n");
  auto ep = run_moat({"run", "--insecure", "--entrypoint", "/bin/sh", app_, "-c",
                      "echo $GREETING; echo $PYTHONDONTWRITEBYTECODE; pwd; id -un; cat /etc/hostname"});
  EXPECT_EQ(ep.exit_code, 0) << ep.err;
  std::string out = ep.out;
  EXPECT_EQ(out.substr(0, out.find("moat-")), "hello from the image\n2\n/srv/app\nnobody\n") << out;

  // A named sandbox keeps those defaults for every exec; flags override them.
  auto created = run_moat({"create", "--insecure", "--name", "appbox", app_});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_EQ(run_moat({"start", "appbox"}).exit_code, 0);
  auto e1 = run_moat({"exec", "appbox", "--", "sh", "-c", "pwd; id -un; echo $GREETING"});
  EXPECT_EQ(e1.out, "/srv/app\nnobody\nhello from the image\n") << e1.err;
  auto e2 = run_moat({"exec", "-w", "/tmp", "-u", "root", "-e", "GREETING=overridden", "appbox", "--", "sh", "-c",
                      "pwd; id -un; echo $GREETING"});
  EXPECT_EQ(e2.out, "/tmp\nroot\noverridden\n") << e2.err;
  auto info = Json::parse(run_moat({"inspect", "appbox"}).out, nullptr, false);
  ASSERT_TRUE(info.is_array());
  EXPECT_EQ(info[0]["image"], app_);
  EXPECT_EQ(info[0]["workdir"], "/srv/app");
  EXPECT_EQ(info[0]["user"], "nobody");
  EXPECT_EQ(info[0]["command"], Json::array({"python3", "-c", "print('cmd of the image')"}));
  EXPECT_EQ(run_moat({"rm", "-f", "appbox"}).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

// A snapshot pins its image by digest: untagged and pruned, the image stays
// while the snapshot exists, a sandbox made from it has the image's config
// and the snapshot's command and files, and once the snapshot is removed a
// prune takes the image.
TEST_F(VmImageSandbox, ASnapshotKeepsItsImageAndItsCommand) {
  ASSERT_EQ(run_moat({"create", "--insecure", "--name", "snapsrc", app_, "print(open('/srv/app/state').read())"}).exit_code, 0);
  ASSERT_EQ(run_moat({"start", "snapsrc"}).exit_code, 0);
  auto w = run_moat({"exec", "-u", "root", "snapsrc", "--", "sh", "-c", "echo kept > /srv/app/state"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  auto s = run_moat({"snapshot", "create", "snapsrc", "app-snap"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto digest = inspected_field("snapsrc", "image_digest");
  ASSERT_EQ(run_moat({"rm", "-f", "snapsrc"}).exit_code, 0);
  ASSERT_EQ(run_moat({"image", "rm", app_}).exit_code, 0);
  ASSERT_EQ(run_moat({"image", "prune"}).exit_code, 0);

  auto r = run_moat({"run", "--from-snapshot", "app-snap"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "kept\n\n");
  auto env = run_moat({"run", "--from-snapshot", "app-snap", "--entrypoint", "/bin/sh", "--", "-c",
                       "pwd; id -un; echo $GREETING"});
  EXPECT_EQ(env.out, "/srv/app\nnobody\nhello from the image\n") << env.err;
  auto info = Json::parse(run_moat({"snapshot", "inspect", "app-snap"}).out, nullptr, false);
  ASSERT_TRUE(info.is_array());
  EXPECT_EQ(info[0]["image"], app_);
  EXPECT_EQ(info[0]["image_digest"], digest);

  ASSERT_EQ(run_moat({"snapshot", "rm", "app-snap"}).exit_code, 0);
  ASSERT_EQ(run_moat({"image", "prune"}).exit_code, 0);
  auto gone = run_moat({"run", "--pull", "never", digest, "--", "true"});
  EXPECT_EQ(gone.exit_code, 125);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST_F(VmImageSandbox, SandboxesOfOneImageShareAReadOnlyRootAndNotTheirWrites) {
  std::string a = trimmed(run_moat({"run", "-d", "--insecure", "--name", "one", python_}).out);
  std::string b = trimmed(run_moat({"run", "-d", "--insecure", "--name", "two", python_}).out);
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  auto img = Json::parse(run_moat({"image", "inspect", python_}).out, nullptr, false);
  ASSERT_TRUE(img.is_object()) << img.dump();
  std::string erofs = img.value("erofs", "");
  ASSERT_FALSE(erofs.empty()) << img.dump();
  std::string before = file_sha256(erofs);
  for (const auto& id : {a, b}) {
    // The shim opens the disks and QEMU inherits them: the image's EROFS
    // must reach QEMU open for reading only, and its drive be read-only.
    pid_t qemu = qemu_of(test_home() + "/sandboxes/" + id);
    ASSERT_GT(qemu, 0) << id;
    int erofs_fds = 0;
    for (const auto& fd : dir_entries("/proc/" + std::to_string(qemu) + "/fd")) {
      char target[4096];
      ssize_t n = ::readlink(("/proc/" + std::to_string(qemu) + "/fd/" + fd).c_str(), target, sizeof target);
      if (n <= 0 || std::string(target, static_cast<std::size_t>(n)) != erofs) continue;
      ++erofs_fds;
      std::ifstream info("/proc/" + std::to_string(qemu) + "/fdinfo/" + fd);
      std::string key, flags;
      while (info >> key >> flags && key != "flags:") {
      }
      EXPECT_EQ(std::stoul(flags, nullptr, 8) & O_ACCMODE, static_cast<unsigned long>(O_RDONLY)) << id << " fd " << fd;
    }
    EXPECT_GE(erofs_fds, 1) << id;  // the inherited one, and QEMU's own copy from its fd set
    std::ifstream cmd(test_home() + "/sandboxes/" + id + "/qemu.cmdline");
    std::string line, drive;
    while (std::getline(cmd, line))
      if (line.find(",id=disk0,") != std::string::npos) drive = line;  // the lower disk comes first
    EXPECT_NE(drive.find(",readonly=on"), std::string::npos) << "lower drive of " << id << ": " << drive;
  }
  auto w = run_moat({"exec", "one", "--", "sh", "-c", "echo mine > /etc/only-one && rm /etc/debian_version"});
  EXPECT_EQ(w.exit_code, 0) << w.err;
  EXPECT_EQ(run_moat({"exec", "two", "--", "cat", "/etc/only-one"}).exit_code, 1);
  EXPECT_EQ(run_moat({"exec", "two", "--", "test", "-f", "/etc/debian_version"}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "one", "--", "test", "-f", "/etc/debian_version"}).exit_code, 1);
  ASSERT_EQ(run_moat({"restart", "one"}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "one", "--", "cat", "/etc/only-one"}).out, "mine\n");
  EXPECT_EQ(run_moat({"rm", "-f", "one", "two"}).exit_code, 0);
  EXPECT_EQ(file_sha256(erofs), before) << "the image's EROFS changed";
}

TEST_F(VmImageSandbox, PatchesLandBeforeTheFirstBoot) {
  std::string host = scratch_ + "/patch-src";
  std::filesystem::create_directories(host + "/tree/sub");
  std::ofstream(host + "/tree/sub/file") << "from the host\n";
  std::string big = random_bytes(100u << 20);
  std::ofstream(host + "/big.bin", std::ios::binary) << big;
  auto o = run_moat({"run", "--insecure", "--copy", host + "/tree:/opt/tree", "--write", "/etc/motd=patched",
                     "--mkdir", "/data", "--copy", host + "/big.bin:/data/big.bin", "--chown", "1000:1000",
                     "--delete", "/etc/debian_version", python_, "--", "sh", "-c",
                     "cat /opt/tree/sub/file /etc/motd; echo; stat -c '%u:%g %a' /data /etc/motd; "
                     "test -e /etc/debian_version || echo gone; stat -c '%a' /tmp; sha256sum /data/big.bin"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "from the host\npatched\n1000:1000 755\n1000:1000 644\ngone\n1777\n" + sha256_hex(big) +
                       "  /data/big.bin\n");
}

TEST_F(VmImageSandbox, BadImagesAndPolicyAreClearErrors) {
  auto never = run_moat({"run", "--pull", "never", "--insecure", registry_->host() + "/test/absent:1", "--", "true"});
  EXPECT_EQ(never.exit_code, 125);
  EXPECT_NE(never.err.find("is not in the local store and --pull is never"), std::string::npos) << never.err;
  auto unknown = run_moat({"run", "--insecure", registry_->host() + "/test/absent:1", "--", "true"});
  EXPECT_EQ(unknown.exit_code, 125);
  EXPECT_NE(unknown.err.find("pull " + registry_->host() + "/test/absent:1"), std::string::npos) << unknown.err;
  auto policy = run_moat({"run", "--pull", "sometimes", python_, "--", "true"});
  EXPECT_EQ(policy.exit_code, 125);
  EXPECT_NE(policy.err.find("--pull sometimes: expected always, missing or never"), std::string::npos);
  auto entry = run_moat({"run", "--insecure", "--entrypoint", "/no/such/program", python_});
  EXPECT_EQ(entry.exit_code, 127) << entry.err;
  EXPECT_TRUE(leftover_sandboxes().empty());
}

}  // namespace
}  // namespace moat::test
