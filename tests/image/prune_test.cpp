// `moat image prune` and the store lock: a tag moved by a later pull leaves
// its old image for prune; stale temp files go, fresh ones stay; prune and
// rm running against concurrent pulls in other processes leave a
// consistent store. Uses Debian's docker-registry like registry_test.cpp.
#include <sys/stat.h>
#include <utime.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <ctime>
#include <fstream>
#include <set>
#include <thread>
#include <nlohmann/json.hpp>

#include "image/oci/digest.h"
#include "image/registry_harness.h"

namespace moat::image::testing {
namespace {

const std::string kRepo = "test/prune";

class Prune : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new TempDir();
    const std::string dir = scratch_->path();
    std::string script = std::string(MOAT_IMAGE_TEST_DIR) + "/make_busybox_oci.py";
    auto made = run({"python3", script, dir + "/one", "1"}, {}, dir);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    registry_ = new LocalRegistry();
    ASSERT_EQ(registry_->start(dir + "/registry"), "");
    push("one", "1", false);
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    delete scratch_;
    scratch_ = nullptr;
  }
  // `v2s2`: converted to a Docker schema2 manifest, a different manifest
  // digest over the same config and layers.
  static void push(const std::string& layout, const std::string& tag, bool all, bool v2s2 = false) {
    std::vector<std::string> argv{"skopeo", "copy", "--quiet", "--dest-tls-verify=false"};
    if (all) argv.push_back("--all");
    if (v2s2) argv.insert(argv.end(), {"--format", "v2s2"});
    argv.push_back("oci:" + scratch_->path() + "/" + layout + ":1");
    argv.push_back("docker://" + registry_->host() + "/" + kRepo + ":" + tag);
    auto r = run(argv, {}, scratch_->path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  void SetUp() override {
    ASSERT_NE(registry_, nullptr);
    std::filesystem::create_directories(home_.path() + "/docker");
    cli_ = image_cli(home_.path());
  }
  // `scratch` keeps concurrent commands' captured output apart.
  CmdResult moat(std::vector<std::string> args, const std::string& scratch = "") {
    args.insert(args.begin(), cli_);
    std::string s = scratch.empty() ? home_.path() : scratch;
    return run(args, {"MOAT_HOME=" + home(), "DOCKER_CONFIG=" + home_.path() + "/docker"}, s);
  }
  std::string home() const { return home_.path() + "/home"; }
  std::string ref(const std::string& tag) const { return registry_->host() + "/" + kRepo + ":" + tag; }
  nlohmann::json inspect(const std::string& r) {
    auto res = moat({"image", "inspect", r});
    EXPECT_EQ(res.exit_code, 0) << res.err;
    return nlohmann::json::parse(res.out, nullptr, false);
  }
  // The blob files an inspected image needs.
  static std::set<std::string> blobs_of(const nlohmann::json& j) {
    std::set<std::string> s{j["digest"].get<std::string>().substr(7),
                            j["manifestDigest"].get<std::string>().substr(7),
                            j["config"]["digest"].get<std::string>().substr(7)};
    for (const auto& l : j["layers"]) s.insert(l["digest"].get<std::string>().substr(7));
    return s;
  }
  std::set<std::string> blob_files() const {
    auto v = list_dir(home() + "/blobs/sha256");
    return {v.begin(), v.end()};
  }

  static TempDir* scratch_;
  static LocalRegistry* registry_;
  TempDir home_;
  std::string cli_;
};

TempDir* Prune::scratch_ = nullptr;
LocalRegistry* Prune::registry_ = nullptr;

TEST_F(Prune, MovedTagLeavesTheOldImageForPrune) {
  push("one", "mv", false);
  ASSERT_EQ(moat({"image", "pull", "-q", "--insecure", ref("mv")}).exit_code, 0);
  auto old_img = inspect(ref("mv"));
  std::string old_root = old_img["erofs"];
  // The tag moves to another image (same layers, another manifest); the
  // pull keeps the old one until prune.
  push("one", "mv", false, true);
  auto p = moat({"image", "pull", "-q", "--insecure", ref("mv")});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto new_img = inspect(ref("mv"));
  ASSERT_NE(new_img["manifestDigest"], old_img["manifestDigest"]);
  EXPECT_EQ(::access(old_root.c_str(), F_OK), 0);

  auto r = moat({"image", "prune"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> old_only;
  for (const auto& b : blobs_of(old_img)) {
    if (!blobs_of(new_img).count(b)) old_only.insert(b);
  }
  EXPECT_EQ(r.out.rfind("removed 1 images, " + std::to_string(old_only.size()) + " blobs, 1 roots, 0 temporary files: ", 0),
            0u)
      << r.out;
  EXPECT_EQ(blob_files(), blobs_of(new_img));
  EXPECT_NE(::access(old_root.c_str(), F_OK), 0);
  EXPECT_EQ(::access(new_img["erofs"].get<std::string>().c_str(), F_OK), 0);
  auto f = moat({"image", "fsck"});
  EXPECT_EQ(f.exit_code, 0) << f.out;
  // Nothing more to do the second time.
  auto again = moat({"image", "prune"});
  EXPECT_EQ(again.out, "removed 0 images, 0 blobs, 0 roots, 0 temporary files: 0 B freed (0 bytes)\n");
}

TEST_F(Prune, RemovesOrphansAndStaleTempFilesButKeepsFreshOnes) {
  ASSERT_EQ(moat({"image", "pull", "-q", "--insecure", ref("1")}).exit_code, 0);
  auto keep = blob_files();
  auto write = [](const std::string& path, std::size_t n, bool stale) {
    std::ofstream(path, std::ios::binary) << std::string(n, 'x');
    if (stale) {
      struct utimbuf t {std::time(nullptr) - 7200, std::time(nullptr) - 7200};
      ::utime(path.c_str(), &t);
    }
  };
  const std::string hex(64, 'a'), hex2(64, 'b');
  write(home() + "/blobs/sha256/" + hex, 100, false);          // orphan blob: goes
  write(home() + "/images/" + hex + ".erofs", 200, false);     // root without a row: goes
  write(home() + "/images/" + hex2 + ".erofs.tmp-abc123", 300, false);  // temp output: goes
  write(home() + "/blobs/incoming/" + hex + ".partial", 400, true);     // stale: goes
  write(home() + "/blobs/incoming/" + hex2 + ".partial", 500, false);   // fresh: stays
  auto r = moat({"image", "prune"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "removed 0 images, 1 blobs, 1 roots, 2 temporary files: 1.0 kB freed (1000 bytes)\n");
  EXPECT_EQ(blob_files(), keep);
  EXPECT_EQ(list_dir(home() + "/blobs/incoming"), std::vector<std::string>{hex2 + ".partial"});
  EXPECT_EQ(moat({"image", "fsck"}).exit_code, 0);
}

TEST_F(Prune, PruneDuringConcurrentPullsNeverBreaksThem) {
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    TempDir a;
    std::atomic<bool> done{false};
    CmdResult pulled;
    std::thread puller([&] {
      pulled = moat({"image", "pull", "-q", "--insecure", ref("1")}, a.path());
      done = true;
    });
    TempDir b;
    int prunes = 0;
    while (!done) {
      auto r = moat({"image", "prune"}, b.path());
      ASSERT_EQ(r.exit_code, 0) << r.err;
      ++prunes;
    }
    puller.join();
    ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
    EXPECT_GT(prunes, 0);
    auto f = moat({"image", "fsck"});
    EXPECT_EQ(f.exit_code, 0) << f.out;
    ASSERT_EQ(moat({"image", "rm", ref("1")}).exit_code, 0);
    EXPECT_EQ(blob_files(), std::set<std::string>{});
  }
}

TEST_F(Prune, RmRacingAPullOfTheSameImageLeavesAConsistentStore) {
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    TempDir a, b;
    std::atomic<bool> done{false};
    CmdResult pulled;
    std::thread puller([&] {
      pulled = moat({"image", "pull", "-q", "--insecure", ref("1")}, a.path());
      done = true;
    });
    while (!done) moat({"image", "rm", ref("1")}, b.path());
    puller.join();
    ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
    // Either the image is whole (fsck) or gone with everything it had.
    auto f = moat({"image", "fsck"});
    EXPECT_EQ(f.exit_code, 0) << f.out;
    auto ls = moat({"image", "ls"});
    if (ls.out.find(ref("1")) == std::string::npos) {
      EXPECT_EQ(blob_files(), std::set<std::string>{});
    } else {
      EXPECT_EQ(blob_files(), blobs_of(inspect(ref("1"))));
    }
    // Consistent: nothing for prune to collect.
    auto p = moat({"image", "prune"});
    EXPECT_EQ(p.out, "removed 0 images, 0 blobs, 0 roots, 0 temporary files: 0 B freed (0 bytes)\n");
    moat({"image", "rm", ref("1")});
  }
}

}  // namespace
}  // namespace moat::image::testing
