// `moat image load` and `moat image save`: every archive form load accepts
// (OCI layout tar, docker-archive old and OCI-layout forms, what skopeo
// writes), round trips through save, and hostile archives. No registry:
// the images come from make_busybox_oci.py and make_archive_fixtures.py.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "image/oci/digest.h"
#include "image/registry_harness.h"

namespace moat::image::testing {
namespace {

class ArchiveLoad : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new TempDir();
    const std::string dir = scratch_->path();
    auto r = run({"python3", std::string(MOAT_IMAGE_TEST_DIR) + "/make_busybox_oci.py", dir + "/layout", "1"},
                 {}, dir);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    manifest_digest_ = r.out.substr(0, r.out.find('\n'));
    ASSERT_TRUE(is_valid_digest(manifest_digest_)) << r.out;
  }
  static void TearDownTestSuite() {
    delete scratch_;
    scratch_ = nullptr;
  }

  void SetUp() override { cli_ = image_cli(home_.path()); }

  static std::string fixture(const std::vector<std::string>& args, const std::string& name,
                             std::string* out = nullptr) {
    std::vector<std::string> argv{"python3", std::string(MOAT_IMAGE_TEST_DIR) + "/make_archive_fixtures.py"};
    std::string path = scratch_->path() + "/" + name;
    for (const auto& a : args) argv.push_back(a == "@OUT" ? path : a == "@LAYOUT" ? layout() : a);
    auto r = run(argv, {}, scratch_->path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (out) *out = r.out.substr(0, r.out.find('\n'));
    return path;
  }
  static std::string layout() { return scratch_->path() + "/layout"; }

  CmdResult moat(std::vector<std::string> args, const std::string& home = "home") {
    args.insert(args.begin(), cli_);
    return run(args, {"MOAT_HOME=" + home_.path() + "/" + home, "DOCKER_CONFIG=" + home_.path() + "/docker"},
               home_.path());
  }
  // Through a shell, for stdin and stdout redirections.
  CmdResult moat_sh(const std::string& script, const std::string& home = "home") {
    return run({"sh", "-c", script}, {"MOAT=" + cli_, "MOAT_HOME=" + home_.path() + "/" + home,
                                      "DOCKER_CONFIG=" + home_.path() + "/docker"},
               home_.path());
  }
  nlohmann::json inspect(const std::string& r, const std::string& home = "home") {
    auto res = moat({"image", "inspect", r}, home);
    EXPECT_EQ(res.exit_code, 0) << res.err;
    auto j = nlohmann::json::parse(res.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << res.out;
    return j;
  }
  std::string dir(const std::string& sub, const std::string& home = "home") const {
    return home_.path() + "/" + home + "/" + sub;
  }
  std::string root_bytes(const std::string& manifest, const std::string& home = "home") const {
    return slurp(dir("images/", home) + manifest.substr(7) + ".erofs");
  }
  // Nothing of a failed load is visible: no ref, no blob, no root, no temp file.
  void expect_empty_store(const std::string& home = "home") {
    auto ls = moat({"image", "ls"}, home);
    EXPECT_EQ(ls.exit_code, 0) << ls.err;
    EXPECT_EQ(std::count(ls.out.begin(), ls.out.end(), '\n'), 1) << ls.out;
    EXPECT_EQ(list_dir(dir("blobs/sha256", home)), std::vector<std::string>{});
    EXPECT_EQ(list_dir(dir("blobs/incoming", home)), std::vector<std::string>{});
    EXPECT_EQ(list_dir(dir("images", home)), std::vector<std::string>{});
  }

  static TempDir* scratch_;
  static std::string manifest_digest_;
  TempDir home_;
  std::string cli_;
};

TempDir* ArchiveLoad::scratch_ = nullptr;
std::string ArchiveLoad::manifest_digest_;

TEST_F(ArchiveLoad, OciLayoutTarFromFileKeepsTheManifestDigestAndName) {
  std::string tar = fixture({"oci", "@LAYOUT", "@OUT", "--name", "example.com/test/bb:oci"}, "named-oci.tar");
  auto r = moat({"image", "load", "-i", tar});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded example.com/test/bb:oci " + manifest_digest_ + "\n");
  auto j = inspect("example.com/test/bb:oci");
  EXPECT_EQ(j["manifestDigest"], manifest_digest_);
  EXPECT_EQ(j["config"]["Cmd"], nlohmann::json::array({"echo hello"}));
  ASSERT_TRUE(j["erofs"].is_string());
  EXPECT_EQ(fsck_erofs(j["erofs"].get<std::string>()), "");
  auto f = moat({"image", "fsck"});
  EXPECT_EQ(f.exit_code, 0) << f.out << f.err;
  EXPECT_EQ(f.out, "OK example.com/test/bb:oci " + manifest_digest_ + "\n");
  // Four blobs (manifest, config, two layers), nothing left in incoming.
  EXPECT_EQ(list_dir(dir("blobs/sha256")).size(), 4u);
  EXPECT_EQ(list_dir(dir("blobs/incoming")), std::vector<std::string>{});
}

TEST_F(ArchiveLoad, UnnamedImageFromStdinIsListedByDigest) {
  // The layout's only annotation is ref.name "1": a tag, no repository.
  std::string tar = fixture({"oci", "@LAYOUT", "@OUT"}, "plain-oci.tar");
  auto r = moat_sh("\"$MOAT\" image load < " + tar);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded " + manifest_digest_ + " " + manifest_digest_ + "\n");
  auto ls = moat({"image", "ls"});
  EXPECT_NE(ls.out.find(manifest_digest_ + " "), std::string::npos) << ls.out;
  EXPECT_EQ(inspect(manifest_digest_)["manifestDigest"], manifest_digest_);
  // `-i -` is stdin too; loading again changes nothing.
  auto again = moat_sh("cat " + tar + " | \"$MOAT\" image load -i -");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
  auto tag = moat({"image", "tag", manifest_digest_, "example.com/named:1"});
  ASSERT_EQ(tag.exit_code, 0) << tag.err;
  auto rm = moat({"image", "rm", manifest_digest_});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_EQ(inspect("example.com/named:1")["manifestDigest"], manifest_digest_);
}

TEST_F(ArchiveLoad, LegacyDockerArchiveGetsAStableGeneratedManifestAndTheSameRoot) {
  std::string oci = fixture({"oci", "@LAYOUT", "@OUT"}, "plain-oci2.tar");
  ASSERT_EQ(moat({"image", "load", "-i", oci}, "ref").exit_code, 0);
  std::string tar = fixture({"legacy", "@LAYOUT", "@OUT", "example.com/test/bb:legacy"}, "legacy.tar");
  auto r = moat({"image", "load", "-i", tar});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.out.rfind("Loaded example.com/test/bb:legacy sha256:", 0), 0u) << r.out;
  auto j = inspect("example.com/test/bb:legacy");
  std::string digest = j["manifestDigest"];
  EXPECT_EQ(j["mediaType"], "application/vnd.oci.image.manifest.v1+json");
  ASSERT_EQ(j["layers"].size(), 2u);
  for (const auto& l : j["layers"]) {
    EXPECT_EQ(l["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    EXPECT_EQ(l["digest"], l["diffID"]);  // an uncompressed layer is its diff_id
  }
  // The same archive in another store: the same generated manifest.
  auto r2 = moat({"image", "load", "-i", tar}, "other");
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(r2.out, r.out);
  // Uncompressed or gzip layers, one tree: the roots are byte-identical.
  std::string a = root_bytes(digest), b = root_bytes(manifest_digest_, "ref");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b);
  EXPECT_EQ(moat({"image", "fsck"}).exit_code, 0);
}

TEST_F(ArchiveLoad, LegacyDockerArchiveWithASymlinkedDuplicateLayer) {
  std::string tar = fixture({"legacy", "@LAYOUT", "@OUT", "example.com/test/bb:dup", "--dup-layer"}, "dup.tar");
  auto r = moat({"image", "load", "-i", tar});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = inspect("example.com/test/bb:dup");
  ASSERT_EQ(j["layers"].size(), 3u);
  EXPECT_EQ(j["layers"][1]["digest"], j["layers"][2]["digest"]);
  auto f = moat({"image", "fsck"});
  EXPECT_EQ(f.exit_code, 0) << f.out;
}

TEST_F(ArchiveLoad, Docker25OciFormTakesIndexJsonAndItsNames) {
  std::string digest;
  std::string tar = fixture({"docker25", "@LAYOUT", "@OUT", "example.com/test/bb:d25"}, "d25.tar", &digest);
  auto r = moat({"image", "load", "-i", tar});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded example.com/test/bb:d25 " + digest + "\n");
  EXPECT_EQ(inspect("example.com/test/bb:d25")["manifestDigest"], digest);
  EXPECT_EQ(moat({"image", "fsck"}).exit_code, 0);
}

TEST_F(ArchiveLoad, LoadsWhatSkopeoWritesAsDockerArchiveAndOciArchive) {
  const std::string src = "oci:" + layout() + ":1";
  std::string da = scratch_->path() + "/skopeo-docker.tar", oa = scratch_->path() + "/skopeo-oci.tar";
  ::unlink(da.c_str());
  ::unlink(oa.c_str());
  auto c1 = run({"skopeo", "copy", "--quiet", src, "docker-archive:" + da + ":example.com/sk/bb:1"}, {},
                scratch_->path());
  ASSERT_EQ(c1.exit_code, 0) << c1.err;
  auto c2 = run({"skopeo", "copy", "--quiet", src, "oci-archive:" + oa + ":1"}, {}, scratch_->path());
  ASSERT_EQ(c2.exit_code, 0) << c2.err;
  auto r1 = moat({"image", "load", "-i", da});
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_EQ(r1.out.rfind("Loaded example.com/sk/bb:1 sha256:", 0), 0u) << r1.out;
  auto r2 = moat({"image", "load", "-i", oa});
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(r2.out, "Loaded " + manifest_digest_ + " " + manifest_digest_ + "\n");
  // Both hold the same tree, so the same root bytes.
  std::string d1 = inspect("example.com/sk/bb:1")["manifestDigest"];
  EXPECT_TRUE(root_bytes(d1) == root_bytes(manifest_digest_));
  EXPECT_EQ(moat({"image", "fsck"}).exit_code, 0);
}

TEST_F(ArchiveLoad, SaveRoundTripsAndIsDeterministicInBothFormats) {
  std::string tar = fixture({"oci", "@LAYOUT", "@OUT", "--name", "example.com/test/bb:rt"}, "rt.tar");
  ASSERT_EQ(moat({"image", "load", "-i", tar}).exit_code, 0);
  for (std::string format : {"oci", "docker"}) {
    SCOPED_TRACE(format);
    std::string out = home_.path() + "/saved-" + format + ".tar";
    auto s = moat({"image", "save", "--format", format, "-o", out, "example.com/test/bb:rt"});
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_EQ(s.out, "");
    // Same bytes again, and on stdout.
    auto s2 = moat_sh("\"$MOAT\" image save --format " + format + " example.com/test/bb:rt > " + out + ".2");
    ASSERT_EQ(s2.exit_code, 0) << s2.err;
    EXPECT_TRUE(slurp(out) == slurp(out + ".2"));
    // Into a fresh store: the same manifest digest, name and root bytes.
    std::string fresh = "fresh-" + format;
    auto l = moat({"image", "load", "-i", out}, fresh);
    ASSERT_EQ(l.exit_code, 0) << l.err;
    EXPECT_EQ(l.out, "Loaded example.com/test/bb:rt " + manifest_digest_ + "\n");
    EXPECT_TRUE(root_bytes(manifest_digest_, fresh) == root_bytes(manifest_digest_));
    // skopeo reads it.
    std::string transport = format == "oci" ? "oci-archive:" : "docker-archive:";
    auto insp = run({"skopeo", "inspect", "--raw", transport + out}, {}, home_.path());
    ASSERT_EQ(insp.exit_code, 0) << insp.err;
    std::string copy_dir = home_.path() + "/copy-" + format;
    auto cp = run({"skopeo", "copy", "--quiet", transport + out, "oci:" + copy_dir + ":x"}, {}, home_.path());
    ASSERT_EQ(cp.exit_code, 0) << cp.err;
    if (format == "oci") {
      EXPECT_EQ(sha256_digest(insp.out), manifest_digest_);
    }
  }
}

TEST_F(ArchiveLoad, SaveFailsClearlyForUnknownImagesAndFormats) {
  auto r = moat({"image", "save", "--format", "oci", "-o", home_.path() + "/x.tar", "example.com/none:1"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_EQ(r.err, "moat: save: no such image: example.com/none:1\n");
  EXPECT_NE(::access((home_.path() + "/x.tar").c_str(), F_OK), 0);
  auto f = moat({"image", "save", "--format", "tgz", "example.com/none:1"});
  EXPECT_EQ(f.exit_code, 125);
  EXPECT_EQ(f.err, "moat: unknown archive format 'tgz' (oci or docker)\n");
}

struct Hostile {
  const char* kind;
  const char* message;  // part of the error
};

TEST_F(ArchiveLoad, HostileArchivesFailClearlyAndLeaveNothing) {
  for (const Hostile& h : {Hostile{"traversal", "archive entry name '../evil' contains '..'"},
                           Hostile{"absolute", "absolute archive entry name '/tmp/evil'"},
                           Hostile{"escape-link", "symlink 'layer.tar' points outside the archive"},
                           Hostile{"device", "archive entry 'dev' is not a file, directory or link"},
                           Hostile{"no-index", "not an image archive: no index.json or manifest.json in it"},
                           Hostile{"bad-digest", "digest mismatch: expected sha256:"},
                           Hostile{"missing-layer", "is not in the archive"}}) {
    SCOPED_TRACE(h.kind);
    std::string tar = fixture({"hostile", h.kind, "@OUT", "@LAYOUT"}, std::string("h-") + h.kind + ".tar");
    std::string home = std::string("h-") + h.kind;
    auto r = moat({"image", "load", "-i", tar}, home);
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("moat: load " + tar + ": ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(h.message), std::string::npos) << r.err;
    expect_empty_store(home);
  }
}

TEST_F(ArchiveLoad, TruncatedArchiveFailsAndLeavesNothing) {
  std::string tar = fixture({"oci", "@LAYOUT", "@OUT", "--name", "example.com/t:1"}, "trunc-src.tar");
  std::string data = slurp(tar);
  std::string cut = home_.path() + "/cut.tar";
  {
    std::ofstream o(cut, std::ios::binary);
    o << data.substr(0, data.size() / 2);
  }
  auto r = moat({"image", "load", "-i", cut});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("runcated"), std::string::npos) << r.err;
  expect_empty_store();
}

}  // namespace
}  // namespace moat::image::testing
