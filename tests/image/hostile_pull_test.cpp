// Hostile images through a real registry: make_hostile_oci.py writes one tag
// per attack (path traversal, absolute paths, symlink-then-write, hardlink
// escapes, a gzip bomb, a huge size header, truncated gzip, a wrong diff_id,
// a blob tampered with in the registry's storage, a descriptor with the
// wrong size), skopeo pushes them to Debian's docker-registry unchanged, and
// `moat image pull` must fail
// with a clear error, leave no ref, no root, nothing in blobs/incoming and
// no unverified blob, and write nothing outside $MOAT_HOME: every path the
// attacks aim at lies in a canary directory that must stay as it was, and
// the pull runs in an empty working directory with an empty TMPDIR that
// must stay empty.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "image/fixture_harness.h"

namespace moat::image::testing {
namespace {

// A low cap for the gzip bomb (256 MiB of zeros in ~260 KB of gzip).
constexpr const char* kBombCap = "MOAT_MAX_UNCOMPRESSED_BYTES=16777216";

class HostilePull : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new TempDir();
    const std::string dir = scratch_->path();
    canary_ = dir + "/canary";
    std::filesystem::create_directories(canary_);
    std::ofstream(canary_ + "/outside-target") << "sentinel\n";
    auto made = run({"python3", std::string(MOAT_IMAGE_TEST_DIR) + "/make_hostile_oci.py", "layout",
                     dir + "/layout", canary_},
                    {}, dir);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    std::istringstream lines(made.out);
    for (std::string tag, digest; lines >> tag >> digest;) manifests_[tag] = digest;
    ASSERT_EQ(manifests_.size(), 13u) << made.out;

    registry_ = new LocalRegistry();
    ASSERT_EQ(registry_->start(dir + "/registry"), "");
    for (const auto& [tag, digest] : manifests_) {
      std::string dest = registry_->host() + "/hostile/" + tag + ":1";
      auto r = skopeo_push(dir + "/layout", tag, dest, dir);
      ASSERT_EQ(r.exit_code, 0) << tag << ": " << r.err;
      // The registry serves the manifest as crafted (skopeo rewrote nothing).
      ASSERT_EQ(registry_digest(dest, dir), digest) << tag;
    }
    tamper_layer();
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    delete scratch_;
    scratch_ = nullptr;
  }

  // Flips one byte of the "tamper" image's layer inside the registry's own
  // storage: the registry then serves bytes that do not match the digest.
  static void tamper_layer() {
    auto manifest = nlohmann::json::parse(read_file(blob_path(manifests_["tamper"])));
    std::string hex = manifest["layers"][0]["digest"].get<std::string>().substr(7);
    tampered_ = "sha256:" + hex;
    std::string data = scratch_->path() + "/registry/storage/docker/registry/v2/blobs/sha256/" +
                       hex.substr(0, 2) + "/" + hex + "/data";
    std::string bytes = read_file(data);
    ASSERT_GT(bytes.size(), 1000u) << data;
    bytes[1000] = static_cast<char>(bytes[1000] ^ 0x55);
    std::ofstream(data, std::ios::binary | std::ios::trunc) << bytes;
    tampered_to_ = sha256_digest(bytes);
  }

  void SetUp() override {
    ASSERT_NE(registry_, nullptr);
    for (const char* d : {"docker", "cwd", "tmp"}) std::filesystem::create_directories(work_ / d);
    cli_ = image_cli(work_.path());
    canary_before_ = tree_listing(canary_);
    ASSERT_EQ(canary_before_, std::vector<std::string>{"outside-target"});
  }

  std::string home() const { return work_ / "home"; }
  static std::string blob_path(const std::string& digest) {
    return scratch_->path() + "/layout/blobs/sha256/" + digest.substr(7);
  }
  // What make_hostile_oci.py puts before a path to climb out of any root.
  static std::string up() {
    std::string s;
    for (int i = 0; i < 24; ++i) s += "../";
    return s;
  }
  std::string ref(const std::string& tag) const { return registry_->host() + "/hostile/" + tag + ":1"; }

  // `moat image ...` from an empty working directory with a private TMPDIR.
  CmdResult moat(std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), {"env", "-C", work_ / "cwd", cli_});
    env.insert(env.end(), {"MOAT_HOME=" + home(), "DOCKER_CONFIG=" + work_ / "docker", "TMPDIR=" + work_ / "tmp"});
    return run(args, env, work_.path());
  }

  // Pulls `tag` and expects exit 1 with exactly "moat: pull REF: <error>"
  // on stderr, then checks that nothing is visible or written anywhere else.
  void expect_rejected(const std::string& tag, const std::string& error,
                       const std::vector<std::string>& env = {}) {
    auto r = moat({"image", "pull", "--insecure", ref(tag)}, env);
    EXPECT_EQ(r.exit_code, 125) << r.out << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "moat: pull " + ref(tag) + ": " + error + "\n");
    expect_nothing_visible();
  }
  // The error of a pull whose blobs were fine but whose layers are not.
  std::string build_error(const std::string& tag, const std::string& error) {
    return "building the root filesystem of " + manifests_[tag] + ": " + error;
  }

  void expect_nothing_visible() {
    auto ls = moat({"image", "ls"});
    EXPECT_EQ(ls.exit_code, 0) << ls.err;
    EXPECT_EQ(ls.out.find("hostile/"), std::string::npos) << ls.out;
    EXPECT_EQ(list_dir(home() + "/images"), std::vector<std::string>{});
    EXPECT_EQ(list_dir(home() + "/blobs/incoming"), std::vector<std::string>{});
    EXPECT_EQ(unverified_blobs(home()), std::vector<std::string>{});
    expect_nothing_outside();
  }

  void expect_nothing_outside() {
    EXPECT_EQ(tree_listing(canary_), canary_before_);
    EXPECT_EQ(read_file(canary_ + "/outside-target"), "sentinel\n");
    EXPECT_EQ(tree_listing(work_ / "cwd"), std::vector<std::string>{});
    EXPECT_EQ(tree_listing(work_ / "tmp"), std::vector<std::string>{});
  }

  static TempDir* scratch_;
  static LocalRegistry* registry_;
  static std::string canary_;
  static std::string tampered_;
  static std::string tampered_to_;
  static std::map<std::string, std::string> manifests_;

  TempDir work_;
  std::string cli_;
  std::vector<std::string> canary_before_;
};

TempDir* HostilePull::scratch_ = nullptr;
LocalRegistry* HostilePull::registry_ = nullptr;
std::string HostilePull::canary_;
std::string HostilePull::tampered_;
std::string HostilePull::tampered_to_;
std::map<std::string, std::string> HostilePull::manifests_;

TEST_F(HostilePull, PathTraversalIsRejected) {
  expect_rejected("traversal", build_error("traversal", "layer 1: tar entry '" + up() + canary_.substr(1) +
                                                            "/traversal': path escapes the root with '..'"));
}

TEST_F(HostilePull, AbsolutePathIsReRootedInsideTheImage) {
  // OCI unpackers treat "/x" as "x" under the root; so does moat.
  auto r = moat({"image", "pull", "--insecure", ref("absolute")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, manifests_["absolute"] + "\n");
  expect_nothing_outside();
  EXPECT_EQ(list_dir(home() + "/blobs/incoming"), std::vector<std::string>{});
  std::string erofs = home() + "/images/" + manifests_["absolute"].substr(7) + ".erofs";
  EXPECT_EQ(fsck_erofs(erofs), "");
  ASSERT_TRUE(can_mount_erofs()) << "this test needs root and the erofs module";
  Mount mnt(erofs, work_ / "mnt");
  ASSERT_TRUE(mnt.ok());
  EXPECT_EQ(read_file(work_ / "mnt" + canary_ + "/absolute"), "x\n");
}

TEST_F(HostilePull, SymlinkThenWriteInOneLayerIsRejected) {
  expect_rejected("symlink-write",
                  build_error("symlink-write", "layer 1: tar entry 'a/passwd': parent path 'a' is a symlink"));
}

TEST_F(HostilePull, SymlinkThenWriteAcrossLayersIsRejected) {
  expect_rejected("symlink-write-2",
                  build_error("symlink-write-2", "layer 2: tar entry 'a/passwd': parent path 'a' is a symlink"));
}

TEST_F(HostilePull, HardlinkOutOfTheRootIsRejected) {
  expect_rejected("hardlink-escape",
                  build_error("hardlink-escape", "layer 1: tar entry 'h': hardlink target '" + up() +
                                                     canary_.substr(1) +
                                                     "/outside-target': path escapes the root with '..'"));
}

TEST_F(HostilePull, HardlinkToAMissingTargetIsRejected) {
  expect_rejected("hardlink-missing",
                  build_error("hardlink-missing",
                              "layer 1: tar entry 'h': hardlink target 'does/not/exist' does not exist"));
}

TEST_F(HostilePull, HardlinkThroughASymlinkIsRejected) {
  expect_rejected("hardlink-symlink",
                  build_error("hardlink-symlink", "layer 1: tar entry 'h': hardlink target 's/outside-target': "
                                                  "parent path 's' is a symlink"));
}

TEST_F(HostilePull, GzipBombStopsAtTheUncompressedCap) {
  expect_rejected("gzip-bomb",
                  build_error("gzip-bomb", "layer 1: tar entry 'bomb': reading layer tar: "
                                           "uncompressed layer exceeds the size limit"),
                  {kBombCap});
}

TEST_F(HostilePull, GzipBombBuildsWithoutTheCap) {
  // The same layer is legitimate under the default bounds: the cap above is
  // what stopped it, not something else about the layer.
  auto r = moat({"image", "pull", "--insecure", ref("gzip-bomb")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, manifests_["gzip-bomb"] + "\n");
  expect_nothing_outside();
}

TEST_F(HostilePull, MalformedCapIsAnError) {
  expect_rejected("gzip-bomb", "MOAT_MAX_UNCOMPRESSED_BYTES must be a number of bytes",
                  {"MOAT_MAX_UNCOMPRESSED_BYTES=16M"});
}

TEST_F(HostilePull, HugeSizeHeaderIsRejectedBeforeReadingData) {
  expect_rejected("huge-header",
                  build_error("huge-header", "layer 1: tar entry 'huge': layer contents exceed the size limit"));
}

TEST_F(HostilePull, TruncatedGzipIsRejected) {
  expect_rejected("truncated-gzip",
                  build_error("truncated-gzip", "layer 1: reading layer tar: truncated gzip input"));
}

TEST_F(HostilePull, WrongDiffIdIsRejected) {
  auto manifest = nlohmann::json::parse(read_file(blob_path(manifests_["wrong-diff-id"])));
  auto config = nlohmann::json::parse(read_file(blob_path(manifest["config"]["digest"])));
  // The layer's real diff_id: the sha256 of its uncompressed tar.
  std::string layer = blob_path(manifest["layers"][0]["digest"]);
  auto sum = run({"sh", "-c", "gzip -dc " + layer + " | sha256sum"}, {}, work_.path());
  ASSERT_EQ(sum.exit_code, 0) << sum.err;
  expect_rejected("wrong-diff-id",
                  build_error("wrong-diff-id", "layer 1: diff_id sha256:" + sum.out.substr(0, 64) +
                                                   " does not match the config's " +
                                                   config["rootfs"]["diff_ids"][0].get<std::string>()));
}

TEST_F(HostilePull, BlobThatDoesNotMatchItsDigestIsRejected) {
  expect_rejected("tamper", "layer 1: digest mismatch: expected " + tampered_ + ", got " + tampered_to_);
  for (const auto& b : list_dir(home() + "/blobs/sha256")) EXPECT_NE("sha256:" + b, tampered_);
}

TEST_F(HostilePull, BlobLargerThanItsDescriptorIsRejected) {
  auto manifest = nlohmann::json::parse(read_file(blob_path(manifests_["short-size"])));
  std::string layer = manifest["layers"][0]["digest"];
  std::uint64_t declared = manifest["layers"][0]["size"];
  expect_rejected("short-size", "layer 1: blob " + layer + " is larger than the " + std::to_string(declared) +
                                    " bytes its descriptor declares");
}

}  // namespace
}  // namespace moat::image::testing
