// Archive metadata parsing (image_archive_index.h) and the auth.json
// helpers `moat registry login` uses (registry_auth.h): no store, no registry.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "image/oci/digest.h"
#include "image/oci/image_archive_index.h"
#include "image/registry/registry_auth.h"

namespace moat::image {
namespace {

const std::string kDigest = "sha256:" + std::string(64, 'a');

TEST(ImageArchiveIndex, ParsesDockerManifestJson) {
  auto r = parse_docker_archive_manifest(
      R"([{"Config":"c.json","RepoTags":["busybox:latest","r:5000/x/y:1"],"Layers":["a/layer.tar","b.tar"]},
          {"Config":"d.json","RepoTags":null,"Layers":[]}])");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].config, "c.json");
  EXPECT_EQ((*r)[0].repo_tags, (std::vector<std::string>{"busybox:latest", "r:5000/x/y:1"}));
  EXPECT_EQ((*r)[0].layers, (std::vector<std::string>{"a/layer.tar", "b.tar"}));
  EXPECT_TRUE((*r)[1].repo_tags.empty());
}

TEST(ImageArchiveIndex, RejectsMalformedDockerManifestJson) {
  struct Case {
    const char* body;
    const char* error;
  };
  for (const Case& c : {Case{"{}", "manifest.json is not a JSON array"},
                        Case{"[1]", "manifest.json entry is not an object"},
                        Case{R"([{"Layers":[]}])", "manifest.json entry without a Config path"},
                        Case{R"([{"Config":"c","Layers":"x"}])", "manifest.json: Layers is not an array"},
                        Case{R"([{"Config":"c","Layers":[1]}])", "manifest.json: Layers holds a non-string"},
                        Case{R"([{"Config":"c"}])", "manifest.json entry without Layers"},
                        Case{"[", "manifest.json is not valid JSON"}}) {
    auto r = parse_docker_archive_manifest(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.error().message, c.error) << c.body;
  }
  EXPECT_EQ(parse_docker_archive_manifest(std::string(100, '[')).error().message, "JSON nested too deeply");
  EXPECT_EQ(parse_docker_archive_manifest(std::string(kMaxArchiveMetadataSize + 1, ' ')).error().code, EFBIG);
}

TEST(ImageArchiveIndex, NamesComeFromContainerdNameAndFullRefNames) {
  Descriptor d;
  d.annotations[std::string(kRefNameAnnotation)] = "latest";  // a tag alone names nothing
  EXPECT_TRUE(names_from_annotations(d).empty());
  d.annotations[std::string(kContainerdNameAnnotation)] = "busybox:1";
  EXPECT_EQ(names_from_annotations(d), std::vector<std::string>{"docker.io/library/busybox:1"});
  d.annotations[std::string(kRefNameAnnotation)] = "example.com/a/b:2";
  EXPECT_EQ(names_from_annotations(d),
            (std::vector<std::string>{"docker.io/library/busybox:1", "example.com/a/b:2"}));
  d.annotations[std::string(kContainerdNameAnnotation)] = "Not A Ref";
  EXPECT_EQ(names_from_annotations(d), std::vector<std::string>{"example.com/a/b:2"});
}

TEST(ImageArchiveIndex, LayoutIndexAndOciLayoutFile) {
  auto idx = parse_layout_index(R"({"schemaVersion":2,"manifests":[{"mediaType":
      "application/vnd.oci.image.manifest.v1+json","digest":")" + kDigest + R"(","size":5}]})");
  ASSERT_TRUE(idx.ok()) << idx.error().message;
  ASSERT_EQ(idx->manifests.size(), 1u);
  EXPECT_EQ(idx->manifests[0].size, 5u);
  EXPECT_FALSE(parse_layout_index("[]").ok());
  EXPECT_TRUE(check_oci_layout_file(R"({"imageLayoutVersion":"1.0.0"})").ok());
  EXPECT_EQ(check_oci_layout_file(R"({"imageLayoutVersion":"2.0.0"})").error().message,
            "unsupported OCI layout version 2.0.0");
  EXPECT_EQ(check_oci_layout_file("{}").error().message, "oci-layout without imageLayoutVersion");
}

TEST(ImageArchiveIndex, CleansEntryPathsAndRefusesEscapes) {
  EXPECT_EQ(*clean_archive_path("./blobs//sha256/./x"), "blobs/sha256/x");
  EXPECT_EQ(*clean_archive_path("dir/"), "dir");
  EXPECT_EQ(*clean_archive_path("./"), "");
  EXPECT_EQ(*clean_archive_path("..x/y"), "..x/y");
  EXPECT_EQ(clean_archive_path("a/../b").error().message, "archive entry name 'a/../b' contains '..'");
  EXPECT_EQ(clean_archive_path("/etc/passwd").error().message, "absolute archive entry name '/etc/passwd'");
  EXPECT_FALSE(clean_archive_path(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(clean_archive_path("a/b/c/d/e/f/g/h/i").ok());
  EXPECT_FALSE(clean_archive_path(std::string(1025, 'a')).ok());
}

TEST(ImageArchiveIndex, ResolvesSymlinksInsideTheArchiveOnly) {
  EXPECT_EQ(*resolve_archive_link("id2/layer.tar", "../id1/layer.tar"), "id1/layer.tar");
  EXPECT_EQ(*resolve_archive_link("a.tar", "./b.tar"), "b.tar");
  EXPECT_EQ(resolve_archive_link("id2/layer.tar", "../../etc/passwd").error().message,
            "symlink 'id2/layer.tar' points outside the archive");
  EXPECT_EQ(resolve_archive_link("x", "/etc/passwd").error().message, "symlink 'x' has an absolute target");
  EXPECT_FALSE(resolve_archive_link("x", "").ok());
}

TEST(ImageArchiveIndex, BlobPathsAndGeneratedManifests) {
  EXPECT_EQ(digest_from_blob_path("blobs/sha256/" + std::string(64, 'a')), kDigest);
  EXPECT_EQ(digest_from_blob_path("blobs/sha256/" + std::string(63, 'a')), "");
  EXPECT_EQ(digest_from_blob_path("blobs/sha512/" + std::string(64, 'a')), "");
  EXPECT_EQ(blob_path_for(kDigest), "blobs/sha256/" + std::string(64, 'a'));
  std::string m = make_archive_manifest(kDigest, 10, {{kDigest, 20, "application/vnd.oci.image.layer.v1.tar"}});
  EXPECT_EQ(m,
            R"({"config":{"digest":")" + kDigest +
                R"(","mediaType":"application/vnd.oci.image.config.v1+json","size":10},"layers":[{"digest":")" +
                kDigest + R"(","mediaType":"application/vnd.oci.image.layer.v1.tar","size":20}],)"
                R"("mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2})");
  auto parsed = parse_manifest(m);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->layers.size(), 1u);
  EXPECT_EQ(sniff_layer_media_type(std::string("\x1f\x8b\x08\x00", 4)), "application/vnd.oci.image.layer.v1.tar+gzip");
  EXPECT_EQ(sniff_layer_media_type(std::string("\x28\xb5\x2f\xfd", 4)), "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ(sniff_layer_media_type("bin/"), "application/vnd.oci.image.layer.v1.tar");
}

class ImageAuthFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (std::filesystem::temp_directory_path() / "moat-auth-XXXXXX").string();
    ASSERT_NE(::mkdtemp(t.data()), nullptr);
    dir_ = t;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string read(const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string dir_;
};

TEST_F(ImageAuthFile, WritesDockerShapeAtomicallyWith0600AndKeepsOtherEntries) {
  std::string path = moat_auth_path(dir_);
  EXPECT_EQ(path, dir_ + "/auth.json");
  std::ofstream(path) << R"({"auths":{"other:1":{"auth":"eDp5"}},"credsStore":"keep"})";
  auto w = write_auth_entry(path, "r:5000", Credentials{"u", "p:w"});
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_FALSE(*w);
  auto j = nlohmann::json::parse(read(path));
  EXPECT_EQ(j["auths"]["r:5000"]["auth"], base64_encode("u:p:w"));
  EXPECT_EQ(j["auths"]["other:1"]["auth"], "eDp5");
  EXPECT_EQ(j["credsStore"], "keep");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto c = docker_config_credentials("r:5000", path);
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "u");
  EXPECT_EQ((*c)->password, "p:w");
  // Docker Hub uses Docker's historic key.
  ASSERT_TRUE(write_auth_entry(path, "docker.io", Credentials{"a", "b"}).ok());
  EXPECT_TRUE(nlohmann::json::parse(read(path))["auths"].contains("https://index.docker.io/v1/"));
  auto removed = write_auth_entry(path, "r:5000", std::nullopt);
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(nlohmann::json::parse(read(path))["auths"].contains("r:5000"));
  // Nothing but auth.json in the directory: the temp file was renamed.
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) n += e.path().filename() == "auth.json" ? 0 : 1;
  EXPECT_EQ(n, 0u);
}

TEST_F(ImageAuthFile, MoatCredentialsComeBeforeDockers) {
  std::string docker = dir_ + "/docker.json";
  std::ofstream(docker) << R"({"auths":{"r:5000":{"auth":")" << base64_encode("d:1") << R"("}}})";
  auto c = stored_credentials("r:5000", dir_, docker);
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "d");
  ASSERT_TRUE(write_auth_entry(moat_auth_path(dir_), "r:5000", Credentials{"m", "2"}).ok());
  c = stored_credentials("r:5000", dir_, docker);
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "m");
  auto none = stored_credentials("elsewhere:1", dir_, docker);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(ImageRegistryName, NormalizesWhatUsersType) {
  EXPECT_EQ(*normalize_registry_name("127.0.0.1:5000"), "127.0.0.1:5000");
  EXPECT_EQ(*normalize_registry_name("http://127.0.0.1:5000/"), "127.0.0.1:5000");
  EXPECT_EQ(*normalize_registry_name("https://index.docker.io/v1/"), "docker.io");
  EXPECT_EQ(*normalize_registry_name("docker.io"), "docker.io");
  EXPECT_EQ(*normalize_registry_name("localhost"), "localhost");
  EXPECT_EQ(normalize_registry_name("not_a_registry").error().message,
            "'not_a_registry' is not a registry host[:port]");
  EXPECT_FALSE(normalize_registry_name("").ok());
}

}  // namespace
}  // namespace moat::image
