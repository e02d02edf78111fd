#include "image/oci/manifest.h"

#include <gtest/gtest.h>

#include <string>

namespace moat::image {
namespace {

const std::string kD1 = "sha256:" + std::string(64, '1');
const std::string kD2 = "sha256:" + std::string(64, '2');
const std::string kD3 = "sha256:" + std::string(64, '3');

std::string entry(const std::string& media, const std::string& digest, const std::string& platform,
                  const std::string& extra = "") {
  return R"({"mediaType":")" + media + R"(","digest":")" + digest + R"(","size":100)" +
         (platform.empty() ? "" : R"(,"platform":)" + platform) + extra + "}";
}

const std::string kOciManifestType(media_type::kOciManifest);

std::string index_json(const std::string& entries, const std::string& media = "application/vnd.oci.image.index.v1+json") {
  return R"({"schemaVersion":2,"mediaType":")" + media + R"(","manifests":[)" + entries + "]}";
}

TEST(ImageManifest, ParsesOciIndexAndSelectsPlatform) {
  std::string body = index_json(
      entry(kOciManifestType, kD1, R"({"os":"linux","architecture":"arm64","variant":"v8"})") + "," +
      entry(kOciManifestType, kD2, R"({"os":"unknown","architecture":"unknown"})",
            R"(,"annotations":{"vnd.docker.reference.type":"attestation-manifest"})") + "," +
      entry(kOciManifestType, kD3, R"({"os":"linux","architecture":"amd64"})"));
  auto kind = detect_manifest_kind(body, "application/vnd.oci.image.index.v1+json");
  ASSERT_TRUE(kind.ok()) << kind.error().message;
  EXPECT_EQ(*kind, ManifestKind::kIndex);
  auto index = parse_index(body);
  ASSERT_TRUE(index.ok()) << index.error().message;
  ASSERT_EQ(index->manifests.size(), 3u);
  auto amd64 = select_platform(*index, default_platform());
  ASSERT_TRUE(amd64.ok()) << amd64.error().message;
  EXPECT_EQ(amd64->digest, kD3);
  auto arm = select_platform(*index, *parse_platform("linux/arm64"));
  ASSERT_TRUE(arm.ok());
  EXPECT_EQ(arm->digest, kD1);
  auto riscv = select_platform(*index, *parse_platform("linux/riscv64"));
  ASSERT_FALSE(riscv.ok());
  EXPECT_NE(riscv.error().message.find("linux/arm64/v8"), std::string::npos);
  EXPECT_EQ(riscv.error().message.find("unknown"), std::string::npos) << "attestation listed";
}

TEST(ImageManifest, AttestationIsNeverSelected) {
  std::string body = index_json(entry(kOciManifestType, kD1, R"({"os":"linux","architecture":"amd64"})",
                                      R"(,"annotations":{"vnd.docker.reference.type":"attestation-manifest"})"));
  auto index = parse_index(body);
  ASSERT_TRUE(index.ok());
  EXPECT_FALSE(select_platform(*index, default_platform()).ok());
}

TEST(ImageManifest, DockerManifestListAndVariants) {
  std::string m(media_type::kDockerManifest);
  std::string body = index_json(
      entry(m, kD1, R"({"os":"linux","architecture":"arm","variant":"v6"})") + "," +
          entry(m, kD2, R"({"os":"linux","architecture":"arm","variant":"v7"})") + "," +
          entry(m, kD3, R"({"os":"linux","architecture":"arm64"})"),
      std::string(media_type::kDockerList));
  auto index = parse_index(body, "application/vnd.docker.distribution.manifest.list.v2+json");
  ASSERT_TRUE(index.ok()) << index.error().message;
  EXPECT_EQ(select_platform(*index, *parse_platform("linux/arm/v7"))->digest, kD2);
  EXPECT_EQ(select_platform(*index, *parse_platform("linux/arm"))->digest, kD1);
  EXPECT_EQ(select_platform(*index, *parse_platform("linux/aarch64/v8"))->digest, kD3);
  EXPECT_FALSE(select_platform(*index, *parse_platform("linux/arm64/v9")).ok());
}

TEST(ImageManifest, UntypedSingleEntryIndex) {
  std::string body = R"({"schemaVersion":2,"manifests":[)" + entry(kOciManifestType, kD1, "") + "]}";
  auto index = parse_index(body);
  ASSERT_TRUE(index.ok()) << index.error().message;
  EXPECT_EQ(select_platform(*index, default_platform())->digest, kD1);
}

std::string manifest_json(const std::string& config_media, const std::string& layer_media) {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
         R"("config":{"mediaType":")" + config_media + R"(","digest":")" + kD1 + R"(","size":10},)"
         R"("layers":[{"mediaType":")" + layer_media + R"(","digest":")" + kD2 + R"(","size":20},)"
         R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" + kD3 +
         R"(","size":30}]})";
}

TEST(ImageManifest, ParsesImageManifest) {
  auto m = parse_manifest(manifest_json(std::string(media_type::kOciConfig),
                                        "application/vnd.oci.image.layer.v1.tar+gzip"),
                          "application/vnd.oci.image.manifest.v1+json; charset=utf-8");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->config.digest, kD1);
  ASSERT_EQ(m->layers.size(), 2u);
  EXPECT_EQ(m->layers[0].compression, LayerCompression::kGzip);
  EXPECT_EQ(m->layers[0].descriptor.size, 20u);
  EXPECT_EQ(m->layers[1].compression, LayerCompression::kZstd);
  EXPECT_EQ(*detect_manifest_kind(manifest_json(std::string(media_type::kOciConfig), "x"), ""),
            ManifestKind::kManifest);
}

TEST(ImageManifest, DockerSchema2Manifest) {
  std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
                     R"("config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" +
                     kD1 + R"(","size":1},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":")" +
                     kD2 + R"(","size":2}]})";
  auto m = parse_manifest(body, "application/vnd.docker.distribution.manifest.v2+json");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->layers.at(0).compression, LayerCompression::kGzip);
}

void expect_manifest_error(const std::string& body, const std::string& fragment,
                           const std::string& content_type = "") {
  auto m = parse_manifest(body, content_type);
  ASSERT_FALSE(m.ok()) << body;
  EXPECT_NE(m.error().message.find(fragment), std::string::npos) << m.error().message;
}

TEST(ImageManifest, RejectsInvalidManifests) {
  std::string oci_config(media_type::kOciConfig);
  std::string good = manifest_json(oci_config, "application/vnd.oci.image.layer.v1.tar");
  expect_manifest_error(manifest_json("application/vnd.example.artifact", "x"), "not a container image");
  expect_manifest_error(manifest_json(oci_config, "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"),
                        "unsupported layer media type");
  expect_manifest_error(good, "does not match", "application/vnd.docker.distribution.manifest.v2+json");
  expect_manifest_error(good, "not an image manifest", "application/vnd.oci.image.index.v1+json");
  expect_manifest_error("{", "not valid JSON");
  expect_manifest_error("[]", "not a JSON object");
  expect_manifest_error(std::string(5000, '[') + std::string(5000, ']'), "nested too deeply");
  expect_manifest_error(std::string(kMaxManifestSize + 1, ' '), "larger than");
  std::string bad_version = good;
  bad_version.replace(bad_version.find("\"schemaVersion\":2"), 17, "\"schemaVersion\":1");
  expect_manifest_error(bad_version, "schemaVersion");
  std::string bad_digest = good;
  bad_digest.replace(bad_digest.find(kD2), 10, "sha256:XYZ");
  expect_manifest_error(bad_digest, "digest");
  std::string neg = good;
  neg.replace(neg.find("\"size\":20"), 9, "\"size\":-1");
  expect_manifest_error(neg, "size");
  std::string str_size = good;
  str_size.replace(str_size.find("\"size\":20"), 9, "\"size\":\"2\"");
  expect_manifest_error(str_size, "size");
  expect_manifest_error(R"({"schemaVersion":2,"config":{"mediaType":")" + oci_config +
                            R"(","digest":")" + kD1 + R"(","size":1}})",
                        "layers");
}

TEST(ImageManifest, ParsesConfig) {
  std::string body = R"({"architecture":"amd64","os":"linux","config":{"User":"1000:1000",)"
                     R"("Env":["PATH=/usr/bin","LANG=C.UTF-8"],"Entrypoint":["/bin/sh","-c"],"Cmd":null,)"
                     R"("WorkingDir":"/app","Labels":{"a":"b"},"StopSignal":"SIGTERM"},)"
                     R"("rootfs":{"type":"layers","diff_ids":[")" + kD1 + R"(",")" + kD2 + R"("]},)"
                     R"("history":[{"created_by":"x"}]})";
  auto cfg = parse_config(body);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  EXPECT_EQ(cfg->platform, default_platform());
  EXPECT_EQ(cfg->user, "1000:1000");
  EXPECT_EQ(cfg->env, (std::vector<std::string>{"PATH=/usr/bin", "LANG=C.UTF-8"}));
  EXPECT_EQ(cfg->entrypoint, (std::vector<std::string>{"/bin/sh", "-c"}));
  EXPECT_TRUE(cfg->cmd.empty());
  EXPECT_EQ(cfg->working_dir, "/app");
  EXPECT_EQ(cfg->labels.at("a"), "b");
  EXPECT_EQ(cfg->diff_ids, (std::vector<std::string>{kD1, kD2}));

  auto manifest = parse_manifest(manifest_json(std::string(media_type::kOciConfig),
                                               "application/vnd.oci.image.layer.v1.tar"));
  ASSERT_TRUE(manifest.ok());
  EXPECT_TRUE(check_layer_count(*manifest, *cfg).ok());
  cfg->diff_ids.pop_back();
  EXPECT_FALSE(check_layer_count(*manifest, *cfg).ok());
}

TEST(ImageManifest, RejectsInvalidConfigs) {
  EXPECT_FALSE(parse_config(R"({"os":"linux","architecture":"amd64"})").ok());
  EXPECT_FALSE(parse_config(R"({"os":"linux","architecture":"amd64","rootfs":{"type":"x","diff_ids":[]}})").ok());
  EXPECT_FALSE(parse_config(R"({"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:1"]}})").ok());
  EXPECT_FALSE(parse_config(R"({"os":"linux","architecture":"amd64","config":{"Env":[1]},"rootfs":{"type":"layers","diff_ids":[]}})").ok());
  EXPECT_FALSE(parse_config(R"({"architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}})").ok());
}

TEST(ImageManifest, Platforms) {
  EXPECT_EQ(parse_platform("linux/amd64")->to_string(), "linux/amd64");
  EXPECT_EQ(parse_platform("linux/x86_64")->to_string(), "linux/amd64");
  EXPECT_EQ(parse_platform("Linux/ARM64/v8")->to_string(), "linux/arm64/v8");
  EXPECT_FALSE(parse_platform("linux").ok());
  EXPECT_FALSE(parse_platform("linux//v7").ok());
  EXPECT_FALSE(parse_platform("a/b/c/d").ok());
}

}  // namespace
}  // namespace moat::image
