#include "image/layers/image_builder.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../image/erofs_check.h"
#include "../image/tar_builder.h"
#include "image/oci/digest.h"

namespace moat::image {
namespace {

using testing::TarBuilder;

class ImageBuilder : public ::testing::Test {
 protected:
  std::string write_layer(const std::string& name, const std::string& bytes) {
    std::string path = tmp_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::vector<std::string> dir_listing() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(tmp_.path())) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  BuildOptions options() {
    BuildOptions o;
    o.tmp_dir = tmp_.path();
    return o;
  }

  testing::TempDir tmp_;
};

TEST_F(ImageBuilder, BuildsImageAndChecksDiffIds) {
  std::string plain1 = TarBuilder().file("a", "1").dir("d").file("d/x", "x").finish();
  std::string plain2 = TarBuilder().whiteout("d/.wh.x").file("b", "2").finish();
  auto l1 = write_layer("l1.tar", plain1);
  auto l2 = write_layer("l2.tar.zst",
                        TarBuilder(TarBuilder::Compression::kZstd).whiteout("d/.wh.x").file("b", "2").finish());
  BuildOptions opts = options();
  opts.expected_diff_ids = {sha256_digest(plain1), sha256_digest(plain2)};
  std::string out = tmp_ / "image.erofs";
  auto result = build_erofs_image({l1, l2}, out, opts);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->diff_ids, opts.expected_diff_ids);
  EXPECT_EQ(result->erofs.inodes, 4u);  // /, a, b, d
  if (testing::have_fsck_erofs()) {
    EXPECT_EQ(testing::fsck_erofs(out), "");
  }
  // Same layers, same bytes.
  std::string again = tmp_ / "again.erofs";
  ASSERT_TRUE(build_erofs_image({l1, l2}, again, opts).ok());
  EXPECT_TRUE(testing::read_file(out) == testing::read_file(again));
}

TEST_F(ImageBuilder, FailuresLeaveNothingBehind) {
  auto good = write_layer("good.tar", TarBuilder().file("a", "1").finish());
  auto bad = write_layer("bad.tar", TarBuilder().file("../../etc/passwd", "x").finish());
  auto before = dir_listing();
  std::string out = tmp_ / "image.erofs";
  auto r = build_erofs_image({good, bad}, out, options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("layer 2"), std::string::npos) << r.error().message;
  EXPECT_EQ(dir_listing(), before);

  BuildOptions opts = options();
  opts.expected_diff_ids = {"sha256:" + std::string(64, '0')};
  r = build_erofs_image({good}, out, opts);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("does not match"), std::string::npos);
  EXPECT_EQ(dir_listing(), before);

  EXPECT_FALSE(build_erofs_image({tmp_ / "missing.tar"}, out, options()).ok());
  EXPECT_EQ(dir_listing(), before);
}

}  // namespace
}  // namespace moat::image
