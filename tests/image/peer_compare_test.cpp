// Tree equality with a peer, through a real registry: each non-hostile
// fixture image (busybox, the crafted multi-layer one, Debian minbase +
// python3) is pushed to Debian's docker-registry with skopeo, pulled with
// `moat image pull`, and its EROFS root (the path `moat image inspect`
// reports) is checked with fsck.erofs and mounted read-only by the kernel.
// The same image, copied back from the registry by skopeo, is unpacked with
// `umoci unpack`; tree_compare.py must find no difference in path, type,
// mode, uid, gid, size, content, mtime, symlink target, rdev, xattrs or
// hardlink groups. Needs root (mount, umoci as root).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "image/fixture_harness.h"

namespace moat::image::testing {
namespace {

struct PeerFixture {
  std::string name;
  std::size_t min_entries;  // a sanity floor: the compared trees are not empty
  std::size_t exact_entries;  // 0: the count depends on the host (busybox, Debian)
};

// Test names and failure messages show the fixture by name.
void PrintTo(const PeerFixture& f, std::ostream* os) { *os << f.name; }

class PeerCompare : public ::testing::TestWithParam<PeerFixture> {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new TempDir();
    registry_ = new LocalRegistry();
    ASSERT_EQ(registry_->start(scratch_->path() + "/registry"), "");
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    delete scratch_;
    scratch_ = nullptr;
  }

  // Writes (or finds) the fixture's OCI layout; returns {layout, tag}.
  std::pair<std::string, std::string> layout_of(const std::string& name) {
    const std::string dir = work_.path();
    const std::string tests = MOAT_IMAGE_TEST_DIR;
    if (name == "busybox") {
      auto r = run({"python3", tests + "/make_busybox_oci.py", dir + "/layout", "1"}, {}, dir);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      return {dir + "/layout", "1"};
    }
    if (name == "crafted") {
      auto r = run({"python3", tests + "/make_oci_fixture.py", dir + "/layout", "crafted"}, {}, dir);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      return {dir + "/layout", "crafted"};
    }
    std::string err;
    std::string layout = debian_python_layout(dir, &err);
    EXPECT_NE(layout, "") << err;
    return {layout, "python3"};
  }

  CmdResult moat(std::vector<std::string> args) {
    args.insert(args.begin(), image_cli(work_.path()));
    return run(args, {"MOAT_HOME=" + work_.path() + "/home", "DOCKER_CONFIG=" + work_.path() + "/docker"},
               work_.path());
  }

  static TempDir* scratch_;
  static LocalRegistry* registry_;
  TempDir work_;
};

TempDir* PeerCompare::scratch_ = nullptr;
LocalRegistry* PeerCompare::registry_ = nullptr;

TEST_P(PeerCompare, MoatRootEqualsUmociUnpack) {
  ASSERT_TRUE(can_mount_erofs()) << "this test needs root and the erofs module";
  const PeerFixture& f = GetParam();
  const std::string dir = work_.path();
  std::filesystem::create_directories(dir + "/docker");
  auto [layout, tag] = layout_of(f.name);
  ASSERT_FALSE(layout.empty());
  const std::string ref = registry_->host() + "/peer/" + f.name + ":" + tag;

  auto pushed = skopeo_push(layout, tag, ref, dir);
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  std::string digest = registry_digest(ref, dir);
  ASSERT_EQ(digest.rfind("sha256:", 0), 0u) << digest;

  auto pulled = moat({"image", "pull", "--insecure", ref});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(pulled.out, digest + "\n");

  auto inspected = moat({"image", "inspect", ref});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  auto j = nlohmann::json::parse(inspected.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << inspected.out;
  EXPECT_EQ(j["digest"], digest);
  EXPECT_EQ(j["manifestDigest"], digest);
  const std::string erofs = j["erofs"].get<std::string>();
  EXPECT_EQ(erofs, dir + "/home/images/" + digest.substr(7) + ".erofs");
  ASSERT_TRUE(std::filesystem::is_regular_file(erofs)) << erofs;
  EXPECT_EQ(fsck_erofs(erofs), "");

  // The peer unpacks exactly what the registry serves.
  auto back = run({"skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://" + ref,
                   "oci:" + dir + "/back:" + tag},
                  {}, dir);
  ASSERT_EQ(back.exit_code, 0) << back.err;
  auto unpacked = run({"umoci", "unpack", "--image", dir + "/back:" + tag, dir + "/bundle"}, {}, dir);
  ASSERT_EQ(unpacked.exit_code, 0) << unpacked.err;

  Mount mnt(erofs, dir + "/mnt");
  ASSERT_TRUE(mnt.ok()) << "mount -t erofs -o loop,ro " << erofs;
  auto cmp = run({"python3", std::string(MOAT_IMAGE_TEST_DIR) + "/tree_compare.py", "--ignore-root-times",
                  dir + "/bundle/rootfs", dir + "/mnt"},
                 {}, dir);
  EXPECT_EQ(cmp.exit_code, 0) << cmp.out << cmp.err;
  std::smatch m;
  static const std::regex summary(R"((\d+) entries, (\d+) hardlink groups, 0 differences\n$)");
  ASSERT_TRUE(std::regex_search(cmp.out, m, summary)) << cmp.out;
  std::size_t entries = std::stoul(m[1]);
  EXPECT_GE(entries, f.min_entries);
  if (f.exact_entries) {
    EXPECT_EQ(entries, f.exact_entries) << cmp.out;
  }

  // The same image loaded from archives (docker-archive as skopeo writes
  // it, and an OCI archive) builds a byte-identical root.
  for (const std::string format : {"docker-archive", "oci-archive"}) {
    const std::string archive = dir + "/" + format + ".tar";
    auto packed = run({"skopeo", "copy", "--quiet", "oci:" + layout + ":" + tag, format + ":" + archive +
                       (format == "docker-archive" ? ":peer/" + f.name + ":" + tag : std::string())},
                      {}, dir);
    ASSERT_EQ(packed.exit_code, 0) << format << ": " << packed.err;
    const std::string home = dir + "/load-" + format;
    auto loaded = run({image_cli(dir), "image", "load", "-i", archive}, {"MOAT_HOME=" + home}, dir);
    ASSERT_EQ(loaded.exit_code, 0) << format << ": " << loaded.err;
    std::vector<std::string> roots;
    for (const auto& e : std::filesystem::directory_iterator(home + "/images"))
      if (e.path().extension() == ".erofs") roots.push_back(e.path().string());
    ASSERT_EQ(roots.size(), 1u) << format;
    EXPECT_EQ(fsck_erofs(roots[0]), "") << format;
    EXPECT_EQ(sha256_digest(read_file(roots[0])), sha256_digest(read_file(erofs)))
        << format << ": the loaded image's root differs from the pulled one";
  }

  if (f.name == "debian-python3") {
    // The root is a working Debian: its own python3 runs from the mount.
    auto py = run({"chroot", dir + "/mnt", "/usr/bin/python3", "-c",
                   "import json, sys; print(json.dumps([sys.version_info[0], 'ok']))"},
                  {"PYTHONDONTWRITEBYTECODE=1"}, dir);
    EXPECT_EQ(py.exit_code, 0) << py.err;
    EXPECT_EQ(py.out, "[3, \"ok\"]\n");
    EXPECT_EQ(j["config"]["Cmd"], nlohmann::json::array({"python3"}));
    EXPECT_EQ(j["config"]["WorkingDir"], "/");
    auto env = j["config"]["Env"].dump();
    EXPECT_NE(env.find("PYTHONDONTWRITEBYTECODE=1"), std::string::npos) << env;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PeerCompare,
                         ::testing::Values(PeerFixture{"busybox", 100, 0}, PeerFixture{"crafted", 40, 43},
                                           PeerFixture{"debian-python3", 3000, 0}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (auto& c : n) if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace moat::image::testing
