// `moat image` against a real registry: Debian's docker-registry on
// 127.0.0.1 (random port, own storage), fed by skopeo from OCI layouts that
// make_busybox_oci.py writes from the host's static busybox.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <nlohmann/json.hpp>

#include "image/oci/digest.h"
#include "image/registry_harness.h"
#include "moat/images.h"

namespace moat::image::testing {
namespace {

const std::string kRepo = "test/busybox";

class RegistryPull : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new TempDir();
    const std::string dir = scratch_->path();
    std::string script = std::string(MOAT_IMAGE_TEST_DIR) + "/make_busybox_oci.py";
    for (auto [layout, tag, multi] : {std::tuple{"one", "1", false}, {"multi", "multi", true}}) {
      std::vector<std::string> argv{"python3", script};
      if (multi) argv.push_back("--multi");
      argv.insert(argv.end(), {dir + "/" + layout, tag});
      auto r = run(argv, {}, dir);
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    registry_ = new LocalRegistry();
    std::string err = registry_->start(dir + "/registry");
    ASSERT_EQ(err, "");
    for (auto [layout, tag, all] : {std::tuple{"one", "1", false}, {"multi", "multi", true}}) {
      std::vector<std::string> argv{"skopeo", "copy", "--quiet", "--dest-tls-verify=false"};
      if (all) argv.push_back("--all");
      argv.push_back("oci:" + dir + "/" + layout + ":" + tag);
      argv.push_back("docker://" + registry_->host() + "/" + kRepo + ":" + tag);
      auto r = run(argv, {}, dir);
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    // The same image again as a Docker schema2 manifest (skopeo converts).
    auto v2 = run({"skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--format", "v2s2",
                   "oci:" + dir + "/one:1", "docker://" + registry_->host() + "/" + kRepo + ":v2s2"},
                  {}, dir);
    ASSERT_EQ(v2.exit_code, 0) << v2.err;
    digest_one_ = skopeo_digest("1");
    digest_multi_ = skopeo_digest("multi");
    digest_v2s2_ = skopeo_digest("v2s2");
  }

  static void TearDownTestSuite() {
    delete registry_;  // stops docker-registry
    registry_ = nullptr;
    delete scratch_;
    scratch_ = nullptr;
  }

  // The digest the registry serves for a tag, as skopeo sees it.
  static std::string skopeo_digest(const std::string& tag) {
    auto r = run({"skopeo", "inspect", "--tls-verify=false", "--raw",
                  "docker://" + registry_->host() + "/" + kRepo + ":" + tag},
                 {}, scratch_->path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return sha256_digest(r.out);
  }

  void SetUp() override {
    ASSERT_NE(registry_, nullptr);
    std::filesystem::create_directories(home_.path() + "/docker");
    cli_ = image_cli(home_.path());
  }

  CmdResult moat(std::vector<std::string> args) {
    args.insert(args.begin(), cli_);
    // An empty Docker config: the host's credentials stay out of the test.
    return run(args, {"MOAT_HOME=" + home_.path() + "/home", "DOCKER_CONFIG=" + home_.path() + "/docker"},
               home_.path());
  }

  std::string ref(const std::string& tag) const { return registry_->host() + "/" + kRepo + ":" + tag; }
  std::string erofs_for(const std::string& digest) const {
    return home_.path() + "/home/images/" + digest.substr(7) + ".erofs";
  }
  std::vector<std::string> blobs() const { return list_dir(home_.path() + "/home/blobs/sha256"); }
  std::vector<std::string> incoming() const {
    return list_dir(home_.path() + "/home/blobs/incoming");
  }
  nlohmann::json inspect(const std::string& r) {
    auto res = moat({"image", "inspect", r});
    EXPECT_EQ(res.exit_code, 0) << res.err;
    auto j = nlohmann::json::parse(res.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << res.out;
    return j;
  }

  static TempDir* scratch_;
  static LocalRegistry* registry_;
  static std::string digest_one_;
  static std::string digest_multi_;
  static std::string digest_v2s2_;

  TempDir home_;
  std::string cli_;
};

TempDir* RegistryPull::scratch_ = nullptr;
LocalRegistry* RegistryPull::registry_ = nullptr;
std::string RegistryPull::digest_one_;
std::string RegistryPull::digest_multi_;
std::string RegistryPull::digest_v2s2_;

TEST_F(RegistryPull, PullPrintsSkopeosDigestAndBuildsAValidRoot) {
  auto r = moat({"image", "pull", "--insecure", ref("1")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest_one_ + "\n");
  std::string erofs = erofs_for(digest_one_);
  ASSERT_TRUE(std::filesystem::exists(erofs)) << erofs;
  EXPECT_EQ(fsck_erofs(erofs), "");
  // Manifest, config and two layers; nothing half-written anywhere.
  auto j = inspect(ref("1"));
  ASSERT_EQ(j["layers"].size(), 2u);
  std::vector<std::string> want{digest_one_.substr(7), j["config"]["digest"].get<std::string>().substr(7),
                                j["layers"][0]["digest"].get<std::string>().substr(7),
                                j["layers"][1]["digest"].get<std::string>().substr(7)};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(blobs(), want);
  EXPECT_EQ(incoming(), std::vector<std::string>{});
}

TEST_F(RegistryPull, MountedRootHasBusyboxAndAppliedWhiteouts) {
  if (!can_mount_erofs()) GTEST_SKIP() << "needs root and the erofs module to mount";
  auto r = moat({"image", "pull", "--insecure", ref("1")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string mnt = home_.path() + "/mnt";
  Mount m(erofs_for(digest_one_), mnt);
  ASSERT_TRUE(m.ok());
  std::string host = read_file("/bin/busybox");
  ASSERT_GT(host.size(), 100000u);
  EXPECT_TRUE(read_file(mnt + "/bin/busybox") == host) << "/bin/busybox differs from the host's";
  struct stat st {};
  ASSERT_EQ(::lstat((mnt + "/bin/busybox").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  char target[64] = {};
  ASSERT_EQ(::readlink((mnt + "/bin/sh").c_str(), target, sizeof target - 1), 7);
  EXPECT_STREQ(target, "busybox");
  EXPECT_EQ(list_dir(mnt + "/etc"), (std::vector<std::string>{"hello.txt", "new.txt"}));
  EXPECT_EQ(list_dir(mnt + "/opt"), std::vector<std::string>{});
  EXPECT_EQ(read_file(mnt + "/etc/hello.txt"), "hello from layer 1\n");
  EXPECT_EQ(read_file(mnt + "/etc/new.txt"), "added by layer 2\n");
}

TEST_F(RegistryPull, SecondPullIsCachedAndARebuildIsByteIdentical) {
  auto first = moat({"image", "pull", "--insecure", ref("1")});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("(built)"), std::string::npos) << first.err;
  std::string erofs = erofs_for(digest_one_);
  std::string bytes = read_file(erofs);
  auto again = moat({"image", "pull", "--insecure", ref("1")});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("(cached)"), std::string::npos) << again.err;
  ASSERT_EQ(::unlink(erofs.c_str()), 0);
  auto rebuilt = moat({"image", "pull", "--insecure", ref("1")});
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.err;
  EXPECT_NE(rebuilt.err.find("(built)"), std::string::npos) << rebuilt.err;
  EXPECT_TRUE(read_file(erofs) == bytes);
}

TEST_F(RegistryPull, LsInspectAndRm) {
  ASSERT_EQ(moat({"image", "pull", "--insecure", ref("1")}).exit_code, 0);
  auto ls = moat({"image", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(ls.out.substr(0, 3), "REF");
  auto line = ls.out.substr(ls.out.find('\n') + 1);
  EXPECT_EQ(line.substr(0, ref("1").size()), ref("1"));
  EXPECT_NE(line.find(digest_one_.substr(7, 12)), std::string::npos) << line;
  EXPECT_NE(line.find("linux/amd64"), std::string::npos) << line;

  auto j = inspect(ref("1"));
  EXPECT_EQ(j["digest"], digest_one_);
  EXPECT_EQ(j["manifestDigest"], digest_one_);
  EXPECT_EQ(j["platform"], "linux/amd64");
  EXPECT_EQ(j["config"]["Entrypoint"], nlohmann::json({"/bin/sh", "-c"}));
  EXPECT_EQ(j["config"]["Cmd"], nlohmann::json({"echo hello"}));
  EXPECT_EQ(j["config"]["Env"], nlohmann::json({"PATH=/bin", "GREETING=hi there"}));
  EXPECT_EQ(j["config"]["WorkingDir"], "/etc");
  EXPECT_EQ(j["config"]["User"], "0:0");
  EXPECT_EQ(j["erofs"], erofs_for(digest_one_));
  EXPECT_EQ(j["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");

  auto rm = moat({"image", "rm", ref("1")});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_EQ(rm.out, ref("1") + "\n");
  EXPECT_FALSE(std::filesystem::exists(erofs_for(digest_one_)));
  EXPECT_EQ(blobs(), std::vector<std::string>{});
  ls = moat({"image", "ls"});
  EXPECT_EQ(ls.out.find(ref("1")), std::string::npos) << ls.out;
  auto again = moat({"image", "rm", ref("1")});
  EXPECT_EQ(again.exit_code, 125);
  EXPECT_EQ(again.err, "moat: no such image: " + ref("1") + "\n");
}

TEST_F(RegistryPull, UnknownTagFailsClearlyAndLeavesNothing) {
  auto r = moat({"image", "pull", "--insecure", ref("nope")});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "moat: pull " + ref("nope") +
                       ": tag 'nope': not found (404) (MANIFEST_UNKNOWN: manifest unknown)\n");
  EXPECT_EQ(blobs(), std::vector<std::string>{});
  EXPECT_EQ(incoming(), std::vector<std::string>{});
  EXPECT_EQ(list_dir(home_.path() + "/home/images"), std::vector<std::string>{});
}

TEST_F(RegistryPull, MalformedReferenceIsRejected) {
  auto r = moat({"image", "pull", "--insecure", registry_->host() + "/Test//busybox"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_EQ(r.err.rfind("moat: invalid image reference '" + registry_->host() + "/Test//busybox': ", 0), 0u)
      << r.err;
}

TEST_F(RegistryPull, PicksThePlatformFromAnIndex) {
  auto r = moat({"image", "pull", "--insecure", ref("multi")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest_multi_ + "\n");
  auto amd = inspect(ref("multi"));
  EXPECT_EQ(amd["digest"], digest_multi_);
  EXPECT_EQ(amd["manifestDigest"], digest_one_);  // the same amd64 image as tag 1
  EXPECT_EQ(amd["platform"], "linux/amd64");

  auto arm = moat({"image", "pull", "--insecure", "--platform", "linux/arm64", ref("multi")});
  ASSERT_EQ(arm.exit_code, 0) << arm.err;
  EXPECT_EQ(arm.out, digest_multi_ + "\n");
  auto j = inspect(ref("multi"));
  EXPECT_EQ(j["platform"], "linux/arm64");
  EXPECT_NE(j["manifestDigest"], digest_one_);
  ASSERT_EQ(j["layers"].size(), 1u);
  EXPECT_EQ(fsck_erofs(j["erofs"].get<std::string>()), "");

  auto none = moat({"image", "pull", "--insecure", "--platform", "linux/s390x", ref("multi")});
  EXPECT_EQ(none.exit_code, 125);
  EXPECT_NE(none.err.find("linux/s390x"), std::string::npos) << none.err;

  // A single-platform image does not pass for another platform either.
  auto other = moat({"image", "pull", "--insecure", "--platform", "linux/arm64", ref("1")});
  EXPECT_EQ(other.exit_code, 125);
  EXPECT_EQ(other.err, "moat: pull " + ref("1") + ": the image is for linux/amd64, not linux/arm64\n");
}

TEST_F(RegistryPull, PullsDockerSchema2Manifests) {
  ASSERT_NE(digest_v2s2_, digest_one_);
  auto r = moat({"image", "pull", "--insecure", ref("v2s2")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest_v2s2_ + "\n");
  auto j = inspect(ref("v2s2"));
  EXPECT_EQ(j["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
  EXPECT_EQ(j["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip");
  EXPECT_EQ(j["config"]["Cmd"], nlohmann::json({"echo hello"}));
  // Same layers, same root: identical bytes to the OCI flavour's.
  ASSERT_EQ(moat({"image", "pull", "--insecure", ref("1")}).exit_code, 0);
  EXPECT_TRUE(read_file(erofs_for(digest_v2s2_)) == read_file(erofs_for(digest_one_)));
  EXPECT_EQ(fsck_erofs(erofs_for(digest_v2s2_)), "");
}

TEST_F(RegistryPull, ConcurrentPullsOfOneImageAllSucceed) {
  constexpr int kPulls = 3;
  std::vector<std::thread> threads;
  std::vector<CmdResult> results(kPulls);
  for (int i = 0; i < kPulls; ++i) {
    std::string scratch = home_.path() + "/p" + std::to_string(i);
    std::filesystem::create_directories(scratch);
    threads.emplace_back([&, i, scratch] {
      results[i] = run({cli_, "image", "pull", "-q", "--insecure", ref("1")},
                       {"MOAT_HOME=" + home_.path() + "/home", "DOCKER_CONFIG=" + home_.path() + "/docker"},
                       scratch);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, digest_one_ + "\n");
  }
  EXPECT_EQ(blobs().size(), 4u);
  EXPECT_EQ(incoming(), std::vector<std::string>{});
  EXPECT_EQ(list_dir(home_.path() + "/home/images"),
            std::vector<std::string>{digest_one_.substr(7) + ".erofs"});
  EXPECT_EQ(fsck_erofs(erofs_for(digest_one_)), "");
}

TEST_F(RegistryPull, TagAddsARefToTheSameImageAndRmOfTheTagKeepsTheSource) {
  ASSERT_EQ(moat({"image", "pull", "--insecure", ref("1")}).exit_code, 0);
  const std::string target = registry_->host() + "/mine/box:v1";
  auto tag = moat({"image", "tag", ref("1"), target});
  ASSERT_EQ(tag.exit_code, 0) << tag.err;
  EXPECT_EQ(tag.out, target + " " + digest_one_ + "\n");
  EXPECT_EQ(tag.err, "");

  auto ls = moat({"image", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  std::vector<std::string> lines;
  std::istringstream in(ls.out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 3u) << ls.out;
  // Sorted by name: 127.0.0.1:<port>/mine/box:v1 before .../test/busybox:1.
  EXPECT_EQ(lines[1].substr(0, target.size() + 1), target + " ");
  EXPECT_EQ(lines[2].substr(0, ref("1").size() + 1), ref("1") + " ");
  for (int i : {1, 2}) {
    EXPECT_NE(lines[i].find(" " + digest_one_.substr(7, 12) + " "), std::string::npos) << lines[i];
  }
  EXPECT_EQ(inspect(target)["manifestDigest"], digest_one_);

  // A digest works as the source too.
  auto by_digest = moat({"image", "tag", digest_one_, "other:2"});
  ASSERT_EQ(by_digest.exit_code, 0) << by_digest.err;
  EXPECT_EQ(by_digest.out, "docker.io/library/other:2 " + digest_one_ + "\n");

  auto rm = moat({"image", "rm", target});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_EQ(rm.out, target + "\n");
  EXPECT_TRUE(std::filesystem::exists(erofs_for(digest_one_)));
  EXPECT_EQ(blobs().size(), 4u);
  EXPECT_EQ(inspect(ref("1"))["digest"], digest_one_);
  auto fsck = moat({"image", "fsck", ref("1")});
  EXPECT_EQ(fsck.exit_code, 0) << fsck.out << fsck.err;
  EXPECT_EQ(fsck.out, "OK " + ref("1") + " " + digest_one_ + "\n");
}

TEST_F(RegistryPull, TagRejectsUnknownSourceAndMalformedTarget) {
  ASSERT_EQ(moat({"image", "pull", "--insecure", ref("1")}).exit_code, 0);
  auto unknown = moat({"image", "tag", ref("nope"), "x:1"});
  EXPECT_EQ(unknown.exit_code, 125);
  EXPECT_EQ(unknown.out, "");
  EXPECT_EQ(unknown.err, "moat: tag " + ref("nope") + ": no such image: " + ref("nope") + "\n");

  const std::string missing = "sha256:" + std::string(64, 'a');
  auto unknown_digest = moat({"image", "tag", missing, "x:1"});
  EXPECT_EQ(unknown_digest.exit_code, 125);
  EXPECT_EQ(unknown_digest.err, "moat: tag " + missing + ": no such image: " + missing + "\n");

  auto bad = moat({"image", "tag", ref("1"), "Bad//Name"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_EQ(bad.out, "");
  EXPECT_EQ(bad.err.rfind("moat: tag " + ref("1") + ": tag target: invalid image reference 'Bad//Name': ", 0),
            0u)
      << bad.err;

  auto pinned = moat({"image", "tag", ref("1"), "x@" + digest_one_});
  EXPECT_EQ(pinned.exit_code, 125);
  EXPECT_EQ(pinned.err, "moat: tag " + ref("1") + ": tag target 'x@" + digest_one_ +
                            "' must be name[:tag], without a digest\n");

  auto ls = moat({"image", "ls"});
  EXPECT_EQ(std::count(ls.out.begin(), ls.out.end(), '\n'), 2) << ls.out;
}

TEST_F(RegistryPull, FsckPassesAFreshPullAndNamesACorruptLayerBlob) {
  ASSERT_EQ(moat({"image", "pull", "--insecure", ref("1")}).exit_code, 0);
  auto fsck = moat({"image", "fsck"});
  EXPECT_EQ(fsck.exit_code, 0) << fsck.out << fsck.err;
  EXPECT_EQ(fsck.out, "OK " + ref("1") + " " + digest_one_ + "\n");
  EXPECT_EQ(fsck.err, "");

  std::string layer = inspect(ref("1"))["layers"][1]["digest"];
  std::string path = home_.path() + "/home/blobs/sha256/" + layer.substr(7);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  std::string bytes = read_file(path);
  ASSERT_GT(bytes.size(), 20u);
  bytes[bytes.size() / 2] ^= 0x01;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  ASSERT_EQ(read_file(path).size(), bytes.size());

  auto bad = moat({"image", "fsck"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_EQ(bad.out, "BAD " + ref("1") + ": blob " + layer + ": content hashes to " +
                         sha256_digest(bytes) + "\n");
  EXPECT_EQ(bad.err, "");
}

TEST_F(RegistryPull, FsckNamesATruncatedRoot) {
  ASSERT_EQ(moat({"image", "pull", "--insecure", ref("1")}).exit_code, 0);
  std::string root = erofs_for(digest_one_);
  ASSERT_EQ(::chmod(root.c_str(), 0644), 0);
  ASSERT_EQ(::truncate(root.c_str(), 4096), 0);
  auto bad = moat({"image", "fsck", ref("1")});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_EQ(bad.out.rfind("BAD " + ref("1") + ": root " + root + ": fsck.erofs exited ", 0), 0u) << bad.out;
  EXPECT_EQ(std::count(bad.out.begin(), bad.out.end(), '\n'), 1) << bad.out;
  // The rebuild's temp file is gone either way.
  EXPECT_EQ(list_dir(home_.path() + "/home/images"), std::vector<std::string>{digest_one_.substr(7) + ".erofs"});

  auto unknown = moat({"image", "fsck", ref("nope")});
  EXPECT_EQ(unknown.exit_code, 125);
  EXPECT_EQ(unknown.out, "BAD " + ref("nope") + ": no such image: " + ref("nope") + "\n");
}

// Sets environment variables for one test, restoring them after.
class ScopedEnv {
 public:
  ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) {
    for (auto& [k, v] : vars) {
      const char* old = std::getenv(k.c_str());
      saved_.push_back({k, old ? std::optional<std::string>(old) : std::nullopt});
      ::setenv(k.c_str(), v.c_str(), 1);
    }
  }
  ~ScopedEnv() {
    for (auto& [k, v] : saved_) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// include/moat/images.h in-process: a pull reports every layer's bytes and
// its completion, and what it returns agrees with inspect and ls.
TEST_F(RegistryPull, ImagesApiPullReportsEveryLayer) {
  ScopedEnv env({{"MOAT_HOME", home_.path() + "/home"}, {"DOCKER_CONFIG", home_.path() + "/docker"}});
  std::vector<moat::PullProgress> reports;
  moat::PullOptions opts;
  opts.insecure_registry = true;
  opts.on_progress = [&](const moat::PullProgress& p) { reports.push_back(p); };
  auto pulled = moat::pull_image(ref("1"), opts);
  ASSERT_TRUE(pulled.ok()) << pulled.error().message;
  EXPECT_EQ(pulled->digest, digest_one_);
  EXPECT_EQ(pulled->ref, ref("1"));
  EXPECT_TRUE(pulled->built_root);
  EXPECT_EQ(pulled->root_path, erofs_for(pulled->manifest_digest));

  auto details = moat::inspect_image(ref("1"));
  ASSERT_TRUE(details.ok()) << details.error().message;
  ASSERT_EQ(details->layers.size(), 2u);
  EXPECT_EQ(details->manifest_digest, pulled->manifest_digest);
  EXPECT_EQ(details->root_path, pulled->root_path);
  std::uint64_t layer_bytes = details->layers[0].size + details->layers[1].size;
  ASSERT_FALSE(reports.empty());
  std::uint64_t last_done = 0;
  for (const auto& r : reports) {
    EXPECT_EQ(r.layers, 2u);
    EXPECT_EQ(r.total, layer_bytes);
    EXPECT_GE(r.done, last_done) << "progress went backwards";
    last_done = r.done;
    ASSERT_TRUE(r.layer == 1 || r.layer == 2) << r.layer;
    EXPECT_EQ(r.digest, details->layers[r.layer - 1].digest);
    EXPECT_LE(r.layer_done, r.layer_total);
  }
  for (std::size_t i = 1; i <= 2; ++i) {
    auto done = std::find_if(reports.begin(), reports.end(),
                             [&](const moat::PullProgress& r) { return r.layer == i && r.layer_complete; });
    ASSERT_NE(done, reports.end()) << "no completion report for layer " << i;
    EXPECT_EQ(done->layer_done, details->layers[i - 1].size);
  }
  EXPECT_EQ(reports.back().done, layer_bytes);
  EXPECT_EQ(reports.back().layers_done, 2u);

  auto listed = moat::list_images();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].ref, ref("1"));
  EXPECT_EQ((*listed)[0].size, details->size);

  auto missing = moat::inspect_image(ref("nope"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_EQ(missing.error().message, "no such image: " + ref("nope"));
}

// include/moat/images.h in-process, the rest of an image's life: tag,
// check, save, remove (the root and blobs go with the last reference),
// load back, prune.
TEST_F(RegistryPull, ImagesApiTagSaveRemoveLoadPrune) {
  ScopedEnv env({{"MOAT_HOME", home_.path() + "/home"}, {"DOCKER_CONFIG", home_.path() + "/docker"}});
  moat::PullOptions opts;
  opts.insecure_registry = true;
  auto pulled = moat::pull_image(ref("1"), opts);
  ASSERT_TRUE(pulled.ok()) << pulled.error().message;

  auto tagged = moat::tag_image(digest_one_.substr(7, 12), "copy:one");
  ASSERT_TRUE(tagged.ok()) << tagged.error().message;
  EXPECT_EQ(tagged->ref, "docker.io/library/copy:one");
  EXPECT_EQ(tagged->digest, digest_one_);
  auto checked = moat::check_images({});
  ASSERT_TRUE(checked.ok()) << checked.error().message;
  ASSERT_EQ(checked->size(), 2u);
  for (const auto& c : *checked) EXPECT_TRUE(c.ok()) << c.ref << ": " << c.problems.front();

  std::string archive = home_.path() + "/one.tar";
  ASSERT_TRUE(moat::save_images_to_file({"copy:one"}, moat::ArchiveFormat::kDocker, archive).ok());
  ASSERT_TRUE(moat::remove_image(ref("1")).ok());
  ASSERT_TRUE(std::filesystem::exists(pulled->root_path)) << "a reference is left: the root stays";
  ASSERT_TRUE(moat::remove_image("copy:one").ok());
  EXPECT_FALSE(std::filesystem::exists(pulled->root_path));
  auto none = moat::list_images();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto gone = moat::remove_image("copy:one");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ENOENT);

  int fd = ::open(archive.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto loaded = moat::load_images(fd);
  ::close(fd);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].names, std::vector<std::string>{"docker.io/library/copy:one"});
  EXPECT_EQ((*loaded)[0].manifest_digest, pulled->manifest_digest);
  EXPECT_EQ((*loaded)[0].root_path, pulled->root_path);
  auto listed = moat::list_images();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].ref, "docker.io/library/copy:one");

  auto pruned = moat::prune_images();
  ASSERT_TRUE(pruned.ok()) << pruned.error().message;
  EXPECT_EQ(pruned->images, 0u);
  EXPECT_EQ(pruned->roots, 0u);
}

// One resolver: a reference, the digest it resolved to, the platform
// manifest's digest and an image id (a digest's first 12+ hex digits) name
// the same image in every command that takes one.
TEST_F(RegistryPull, EveryImageCommandTakesEveryFormOfName) {
  ASSERT_EQ(moat({"image", "pull", "--insecure", ref("multi")}).exit_code, 0);
  auto j = inspect(ref("multi"));
  const std::string manifest = j["manifestDigest"].get<std::string>();
  ASSERT_NE(manifest, digest_multi_);  // an index: two digests
  const std::vector<std::string> forms = {ref("multi"), digest_multi_, manifest, digest_multi_.substr(7, 12),
                                          manifest.substr(7, 20)};
  for (std::size_t i = 0; i < forms.size(); ++i) {
    const std::string& form = forms[i];
    auto in = moat({"image", "inspect", form});
    ASSERT_EQ(in.exit_code, 0) << form << ": " << in.err;
    auto got = nlohmann::json::parse(in.out, nullptr, false);
    EXPECT_EQ(got["manifestDigest"], manifest) << form;

    std::string target = "copy:" + std::to_string(i);
    auto tag = moat({"image", "tag", form, target});
    EXPECT_EQ(tag.exit_code, 0) << form << ": " << tag.err;
    EXPECT_EQ(tag.out.rfind("docker.io/library/" + target + " sha256:", 0), 0u) << tag.out;

    auto fsck = moat({"image", "fsck", form});
    EXPECT_EQ(fsck.exit_code, 0) << form << ": " << fsck.out << fsck.err;
    EXPECT_EQ(fsck.out.rfind("OK ", 0), 0u) << fsck.out;

    std::string archive = home_.path() + "/saved-" + std::to_string(i) + ".tar";
    auto save = moat({"image", "save", "--format", "oci", "-o", archive, form});
    EXPECT_EQ(save.exit_code, 0) << form << ": " << save.err;
    EXPECT_GT(std::filesystem::file_size(archive), 1000u);
  }
  // Hex that starts no stored digest is a repository name like any other.
  auto unknown = moat({"image", "inspect", "0123456789ab"});
  EXPECT_EQ(unknown.exit_code, 125);
  EXPECT_EQ(unknown.err, "moat: no such image: docker.io/library/0123456789ab:latest\n");
}

// `moat image mount` took every name with a '/' for a file path, so no
// registry reference could be mounted.
TEST_F(RegistryPull, ImageMountTakesAReferenceAnIdOrAFile) {
  ASSERT_EQ(moat({"image", "pull", "--insecure", ref("1")}).exit_code, 0);
  const std::string moat_bin = std::string(MOAT_BIN_DIR) + "/moat";
  const std::vector<std::string> env = {"MOAT_HOME=" + home_.path() + "/home"};
  const std::vector<std::string> forms = {ref("1"), digest_one_.substr(7, 12), erofs_for(digest_one_)};
  for (std::size_t i = 0; i < forms.size(); ++i) {
    std::string mnt = home_.path() + "/mnt" + std::to_string(i);
    std::filesystem::create_directories(mnt);
    auto mount = run({moat_bin, "image", "mount", forms[i], mnt}, env, home_.path());
    ASSERT_EQ(mount.exit_code, 0) << forms[i] << ": " << mount.err;
    EXPECT_EQ(read_file(mnt + "/etc/hello.txt"), "hello from layer 1\n") << forms[i];
    auto umount = run({moat_bin, "image", "umount", mnt}, env, home_.path());
    EXPECT_EQ(umount.exit_code, 0) << umount.err;
  }
  auto missing = run({moat_bin, "image", "mount", home_.path() + "/no.erofs", home_.path()}, env, home_.path());
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_EQ(missing.err, "moat: " + home_.path() + "/no.erofs: No such file or directory\n");
  auto neither = run({moat_bin, "image", "mount", "some/dir", home_.path()}, env, home_.path());
  EXPECT_EQ(neither.exit_code, 125);
  EXPECT_EQ(neither.err, "moat: some/dir: no such file, and no such image: docker.io/some/dir:latest\n");
}

}  // namespace
}  // namespace moat::image::testing
