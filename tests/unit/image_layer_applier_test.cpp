#include "image/layers/layer_applier.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../image/erofs_check.h"
#include "../image/tar_builder.h"
#include "image/oci/digest.h"
#include "image/erofs/tree_path.h"

namespace moat::image {
namespace {

using testing::TarBuilder;
using Meta = TarBuilder::Meta;
using testing::meta;

class ImageLayerApplier : public ::testing::Test {
 protected:
  void SetUp() override {
    auto spool = Spool::create(tmp_.path());
    ASSERT_TRUE(spool.ok());
    spool_.emplace(std::move(*spool));
    applier_.emplace(tree_, *spool_, limits_);
  }

  void reset_limits(const LayerLimits& limits) {
    limits_ = limits;
    applier_.emplace(tree_, *spool_, limits_);
  }

  Result<std::string> apply(const std::string& tar) {
    layers_.push_back(tar);
    auto reader = TarReader::open_memory(layers_.back().data(), layers_.back().size());
    if (!reader.ok()) return reader.error();
    return applier_->apply(**reader);
  }

  void apply_ok(const std::string& tar) {
    auto r = apply(tar);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

  std::string apply_error(const std::string& tar) {
    auto r = apply(tar);
    EXPECT_FALSE(r.ok()) << "layer applied but should fail";
    if (!r.ok() && std::getenv("MOAT_TEST_SHOW_ERRORS")) std::fprintf(stderr, "error: %s\n", r.error().message.c_str());
    return r.ok() ? "" : r.error().message;
  }

  // Node at a path, or null.
  const Inode* find(const std::string& path) const {
    auto comps = split_entry_path(path);
    if (!comps.ok()) return nullptr;
    const Inode* node = &tree_.root();
    for (auto comp : *comps) {
      auto it = node->children.find(comp);
      if (it == node->children.end()) return nullptr;
      node = it->second.get();
    }
    return node;
  }
  InodePtr find_ptr(const std::string& path) const {
    auto comps = *split_entry_path(path);
    const Inode* node = &tree_.root();
    InodePtr ptr;
    for (auto comp : comps) {
      auto it = node->children.find(comp);
      if (it == node->children.end()) return nullptr;
      ptr = it->second;
      node = ptr.get();
    }
    return ptr;
  }

  std::string content(const std::string& path) const {
    const Inode* node = find(path);
    if (!node || node->type != FileType::kRegular) return "<missing>";
    std::string out(node->content.size, '\0');
    EXPECT_TRUE(spool_->read(node->content.offset, out.data(), out.size()).ok());
    return out;
  }

  std::vector<std::string> names(const std::string& path) const {
    std::vector<std::string> out;
    const Inode* node = find(path);
    if (node) {
      for (const auto& [name, child] : node->children) out.push_back(name);
    }
    return out;
  }

  testing::TempDir tmp_;
  FsTree tree_;
  std::optional<Spool> spool_;
  LayerLimits limits_;
  std::optional<LayerApplier> applier_;
  std::vector<std::string> layers_;
};

using Names = std::vector<std::string>;

template <typename F>
LayerLimits limits_with(F f) {
  LayerLimits limits;
  f(limits);
  return limits;
}

TEST_F(ImageLayerApplier, EveryEntryTypeWithMetadata) {
  Meta suid = meta(04755, 1000, 2000, 1700000001, 123456789);
  suid.xattrs["security.capability"] = std::string("\x01\x00\x00\x02\x00\x20\x00\x00", 8) +
                                       std::string(12, '\0');
  suid.xattrs["user.note"] = "hello";
  apply_ok(TarBuilder()
               .dir("bin", meta(0755, 0, 0, 5))
               .file("bin/ping", "ELF", suid)
               .symlink("bin/sh", "busybox")
               .device("dev/null", false, 1, 3, meta(0666))
               .device("dev/sda", true, 8, 0)
               .fifo("run/fifo", meta(01777))
               .finish());
  const Inode* ping = find("bin/ping");
  ASSERT_NE(ping, nullptr);
  EXPECT_EQ(ping->mode, 04755u);
  EXPECT_EQ(ping->uid, 1000u);
  EXPECT_EQ(ping->gid, 2000u);
  EXPECT_EQ(ping->mtime, (Timespec{1700000001, 123456789}));
  EXPECT_EQ(ping->xattrs, suid.xattrs);
  EXPECT_EQ(content("bin/ping"), "ELF");
  EXPECT_EQ(find("bin")->mtime.sec, 5);
  EXPECT_EQ(find("bin/sh")->symlink_target, "busybox");
  EXPECT_EQ(find("dev/null")->type, FileType::kCharDevice);
  EXPECT_EQ(find("dev/null")->rdev_minor, 3u);
  EXPECT_EQ(find("dev/sda")->type, FileType::kBlockDevice);
  EXPECT_EQ(find("dev/sda")->rdev_major, 8u);
  EXPECT_EQ(find("run/fifo")->type, FileType::kFifo);
  EXPECT_EQ(find("run/fifo")->mode, 01777u);
  // Implicit parents.
  const Inode* dev = find("dev");
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->mode, 0755u);
  EXPECT_EQ(dev->uid, 0u);
  EXPECT_EQ(dev->mtime, Timespec{});
}

TEST_F(ImageLayerApplier, WhiteoutsDeleteLowerFilesAndDirectories) {
  apply_ok(TarBuilder()
               .file("a", "a")
               .file("b", "b")
               .dir("d")
               .file("d/x", "x")
               .dir("d/sub")
               .file("d/sub/y", "y")
               .finish());
  apply_ok(TarBuilder().whiteout(".wh.a").whiteout("d/.wh.sub").whiteout(".wh.missing").finish());
  EXPECT_EQ(names(""), (Names{"b", "d"}));
  EXPECT_EQ(names("d"), (Names{"x"}));
  apply_ok(TarBuilder().whiteout(".wh.d").finish());
  EXPECT_EQ(names(""), (Names{"b"}));
}

TEST_F(ImageLayerApplier, WhiteoutSparesSameLayerEntries) {
  apply_ok(TarBuilder().dir("d").file("d/lower", "l").file("f", "old").finish());
  // The whiteout comes after the new entries in the tar: it still only
  // applies to what lower layers had.
  apply_ok(TarBuilder()
               .file("f", "new")
               .whiteout(".wh.f")
               .dir("d")
               .file("d/upper", "u")
               .whiteout(".wh.d")
               .finish());
  EXPECT_EQ(content("f"), "new");
  EXPECT_EQ(names("d"), (Names{"upper"}));
}

TEST_F(ImageLayerApplier, OpaqueHidesOnlyLowerContentsInAnyOrder) {
  apply_ok(TarBuilder()
               .dir("d")
               .file("d/a", "a")
               .dir("d/sub")
               .file("d/sub/old", "o")
               .dir("e")
               .file("e/a", "a")
               .finish());
  apply_ok(TarBuilder()
               .file("d/new", "n")
               .file("d/sub/fresh", "f")
               .whiteout("d/.wh..wh..opq")  // after its siblings
               .whiteout("e/.wh..wh..opq")  // before its siblings
               .file("e/b", "b")
               .finish());
  EXPECT_EQ(names("d"), (Names{"new", "sub"}));
  EXPECT_EQ(names("d/sub"), (Names{"fresh"}));
  EXPECT_EQ(names("e"), (Names{"b"}));
  ASSERT_NE(find("d"), nullptr);
}

TEST_F(ImageLayerApplier, RecreationAfterDeletion) {
  apply_ok(TarBuilder().dir("d", meta(0700)).file("d/x", "1").finish());
  apply_ok(TarBuilder().whiteout(".wh.d").finish());
  EXPECT_EQ(find("d"), nullptr);
  apply_ok(TarBuilder().file("d", "now a file").finish());
  EXPECT_EQ(content("d"), "now a file");
  apply_ok(TarBuilder().whiteout(".wh.d").dir("d", meta(0711)).file("d/y", "2").finish());
  EXPECT_EQ(find("d")->mode, 0711u);
  EXPECT_EQ(names("d"), (Names{"y"}));
}

TEST_F(ImageLayerApplier, DirectoryMetadataReplacedChildrenKept) {
  apply_ok(TarBuilder().dir("d", meta(0700, 1)).file("d/keep", "k").finish());
  Meta m2 = meta(0755, 2, 3, 99);
  m2.xattrs["user.x"] = "y";
  apply_ok(TarBuilder().dir("d", m2).finish());
  const Inode* d = find("d");
  EXPECT_EQ(d->mode, 0755u);
  EXPECT_EQ(d->uid, 2u);
  EXPECT_EQ(d->gid, 3u);
  EXPECT_EQ(d->mtime.sec, 99);
  EXPECT_EQ(d->xattrs.at("user.x"), "y");
  EXPECT_EQ(names("d"), (Names{"keep"}));
}

TEST_F(ImageLayerApplier, FileReplacedByDirectoryAndBack) {
  apply_ok(TarBuilder().file("x", "file").dir("y").file("y/child", "c").finish());
  apply_ok(TarBuilder().dir("x").file("x/inside", "i").file("y", "now a file").finish());
  EXPECT_EQ(find("x")->type, FileType::kDirectory);
  EXPECT_EQ(names("x"), (Names{"inside"}));
  EXPECT_EQ(content("y"), "now a file");
}

TEST_F(ImageLayerApplier, HardlinksWithinAndAcrossLayers) {
  apply_ok(TarBuilder().file("lower", "L").finish());
  apply_ok(TarBuilder()
               .file("a", "A")
               .hardlink("b", "a")
               .hardlink("dir/c", "/a")
               .hardlink("to-lower", "./lower")
               .finish());
  EXPECT_EQ(find_ptr("a"), find_ptr("b"));
  EXPECT_EQ(find_ptr("a"), find_ptr("dir/c"));
  EXPECT_EQ(find_ptr("lower"), find_ptr("to-lower"));
  EXPECT_EQ(content("dir/c"), "A");
  // Deleting one name keeps the others.
  apply_ok(TarBuilder().whiteout(".wh.a").finish());
  EXPECT_EQ(content("b"), "A");
  EXPECT_NE(apply_error(TarBuilder().hardlink("z", "nope").finish()).find("does not exist"),
            std::string::npos);
  EXPECT_NE(apply_error(TarBuilder().hardlink("z", "dir").finish()).find("directory"),
            std::string::npos);
  EXPECT_NE(apply_error(TarBuilder().hardlink("z", "../../etc/shadow").finish()).find("escapes"),
            std::string::npos);
}

TEST_F(ImageLayerApplier, PathsAreLexicalAndConfined) {
  apply_ok(TarBuilder()
               .file("/abs/file", "re-rooted")
               .file("./dot/file", "d")
               .file("a//b/./c", "c")
               .file("x/../y", "y")
               .finish());
  EXPECT_EQ(content("abs/file"), "re-rooted");
  EXPECT_EQ(content("dot/file"), "d");
  EXPECT_EQ(content("a/b/c"), "c");
  EXPECT_EQ(content("y"), "y");
  EXPECT_NE(apply_error(TarBuilder().file("../escape", "x").finish()).find("escapes"),
            std::string::npos);
  EXPECT_NE(apply_error(TarBuilder().file("a/../../escape", "x").finish()).find("escapes"),
            std::string::npos);
}

TEST_F(ImageLayerApplier, NothingIsWrittenThroughSymlinks) {
  // Symlink then a write through it, in one layer and across layers.
  EXPECT_NE(apply_error(TarBuilder().symlink("etc", "/host/etc").file("etc/passwd", "x").finish())
                .find("symlink"),
            std::string::npos);
  apply_ok(TarBuilder().symlink("lib", "usr/lib").dir("usr/lib").finish());
  EXPECT_NE(apply_error(TarBuilder().file("lib/evil.so", "x").finish()).find("symlink"),
            std::string::npos);
  EXPECT_NE(apply_error(TarBuilder().whiteout("lib/.wh.x").finish()).find("symlink"),
            std::string::npos);
  EXPECT_NE(apply_error(TarBuilder().hardlink("h", "lib/x").finish()).find("symlink"),
            std::string::npos);
  // Replacing the symlink itself is fine.
  apply_ok(TarBuilder().dir("lib").file("lib/ok", "ok").finish());
  EXPECT_EQ(content("lib/ok"), "ok");
  // A file as a parent.
  apply_ok(TarBuilder().file("plain", "p").finish());
  EXPECT_NE(apply_error(TarBuilder().file("plain/x", "x").finish()).find("not a directory"),
            std::string::npos);
}

TEST_F(ImageLayerApplier, InvalidWhiteoutsAndAufsMetadata) {
  EXPECT_FALSE(apply(TarBuilder().whiteout(".wh.").finish()).ok());
  apply_ok(TarBuilder()
               .file(".wh..wh.aufs", "")
               .dir(".wh..wh.plnk")
               .file(".wh..wh.plnk/1.2", "x")
               .file("real", "r")
               .finish());
  EXPECT_EQ(names(""), (Names{"real"}));
  EXPECT_NE(apply_error(TarBuilder().file(".wh.x/y", "x").finish()).find("whiteout"),
            std::string::npos);
}

TEST_F(ImageLayerApplier, RootEntry) {
  apply_ok(TarBuilder().dir("./", meta(0555, 0, 0, 42)).file("f", "x").finish());
  EXPECT_EQ(tree_.root().mode, 0555u);
  EXPECT_EQ(tree_.root().mtime.sec, 42);
  EXPECT_FALSE(apply(TarBuilder().file("./", "x").finish()).ok());
}

TEST_F(ImageLayerApplier, XattrFiltering) {
  Meta m;
  m.xattrs = {{"trusted.overlay.opaque", "y"},
                 {"trusted.keep", "k"},
                 {"security.capability", std::string(20, '\1')},
                 {"system.nfs4_acl", "x"}};
  apply_ok(TarBuilder().file("f", "x", m).finish());
  std::map<std::string, std::string> want = {{"trusted.keep", "k"},
                                             {"security.capability", std::string(20, '\1')}};
  EXPECT_EQ(find("f")->xattrs, want);
  EXPECT_EQ(applier_->stats().dropped_xattrs, 2u);
}

TEST_F(ImageLayerApplier, Utf8AndLongNames) {
  std::string long_name(255, 'n');
  std::string utf8 = "\xc3\xa9t\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt";
  apply_ok(TarBuilder().file(long_name, "long").file(utf8, "utf").finish());
  EXPECT_EQ(content(long_name), "long");
  EXPECT_EQ(content(utf8), "utf");
  EXPECT_FALSE(apply(TarBuilder().file(std::string(256, 'n'), "x").finish()).ok());
}

TEST_F(ImageLayerApplier, CompressedLayersAndDiffIds) {
  for (auto c : {TarBuilder::Compression::kNone, TarBuilder::Compression::kGzip,
                 TarBuilder::Compression::kZstd}) {
    std::string plain = TarBuilder().file("c", "compressed").finish();
    std::string layer = TarBuilder(c).file("c", "compressed").finish();
    auto diff_id = apply(layer);
    ASSERT_TRUE(diff_id.ok()) << diff_id.error().message;
    EXPECT_EQ(*diff_id, sha256_digest(plain));
    EXPECT_EQ(content("c"), "compressed");
  }
}

TEST_F(ImageLayerApplier, DiffIdCoversPaddingAndOddStreams) {
  std::string plain = TarBuilder().file("p", "padded").finish() + std::string(8192, '\0');
  auto diff_id = apply(plain);
  ASSERT_TRUE(diff_id.ok()) << diff_id.error().message;
  EXPECT_EQ(*diff_id, sha256_digest(plain));

  // gzip with several members, as some layer producers write.
  std::string tar = TarBuilder().file("m", std::string(5000, 'm')).file("n", "n").finish();
  std::string multi = testing::compress(tar.substr(0, 3000), false) +
                      testing::compress(tar.substr(3000), false);
  diff_id = apply(multi);
  ASSERT_TRUE(diff_id.ok()) << diff_id.error().message;
  EXPECT_EQ(*diff_id, sha256_digest(tar));
  EXPECT_EQ(content("n"), "n");

  // zstd followed by a skippable frame (zstd:chunked puts metadata there).
  std::string skippable("\x50\x2a\x4d\x18\x04\x00\x00\x00meta", 12);
  diff_id = apply(testing::compress(tar, true) + skippable);
  ASSERT_TRUE(diff_id.ok()) << diff_id.error().message;
  EXPECT_EQ(*diff_id, sha256_digest(tar));
}

TEST_F(ImageLayerApplier, TruncatedStreamsFail) {
  std::string big(200000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7919 % 251);
  std::string gz = TarBuilder(TarBuilder::Compression::kGzip).file("f", big).finish();
  std::string msg = apply_error(gz.substr(0, gz.size() / 2));
  EXPECT_FALSE(msg.empty());
  std::string plain = TarBuilder().file("f", big).finish();
  EXPECT_FALSE(apply_error(plain.substr(0, 4096)).empty());
  EXPECT_FALSE(apply(std::string("not a tar at all, definitely not")).ok());
}

TEST_F(ImageLayerApplier, TarBombLimits) {
  reset_limits(limits_with([](LayerLimits& l) { l.max_entries = 3; }));
  EXPECT_NE(apply_error(TarBuilder().file("1", "").file("2", "").file("3", "").file("4", "").finish())
                .find("entries"),
            std::string::npos);
  reset_limits(limits_with([](LayerLimits& l) { l.max_content_bytes = 1000; }));
  EXPECT_NE(apply_error(TarBuilder().file("big", std::string(2000, 'x')).finish()).find("limit"),
            std::string::npos);
  reset_limits(limits_with([](LayerLimits& l) { l.max_uncompressed_bytes = 100000; }));
  std::string bomb = TarBuilder(TarBuilder::Compression::kGzip).file("z", std::string(1 << 20, '\0')).finish();
  EXPECT_LT(bomb.size(), 10000u);
  EXPECT_NE(apply_error(bomb).find("size limit"), std::string::npos);
  reset_limits(limits_with([](LayerLimits& l) { l.max_layer_path_bytes = 100; }));
  EXPECT_NE(apply_error(TarBuilder().file(std::string(60, 'a'), "").file(std::string(60, 'b'), "").finish())
                .find("paths exceed"),
            std::string::npos);
  reset_limits(limits_with([](LayerLimits& l) { l.max_path_length = 50; }));
  EXPECT_FALSE(apply(TarBuilder().file(std::string(40, 'a') + "/" + std::string(40, 'b'), "").finish()).ok());
}

// Several layers through the whole pipeline: tars -> tree -> EROFS -> kernel.
TEST_F(ImageLayerApplier, LayersToMountedImage) {
  Meta cap = meta(0755);
  cap.xattrs["security.capability"] = std::string("\x00\x00\x00\x02\x00\x20\x00\x00", 8) +
                                      std::string(12, '\0');
  apply_ok(TarBuilder(TarBuilder::Compression::kGzip)
               .dir("etc")
               .file("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
               .file("etc/shadow", "secret", meta(0640, 0, 42))
               .dir("usr/bin")
               .file("usr/bin/ping", "ping", cap)
               .hardlink("usr/bin/ping6", "usr/bin/ping")
               .symlink("bin", "usr/bin")
               .device("dev/console", false, 5, 1)
               .fifo("dev/initctl")
               .dir("var/cache")
               .file("var/cache/junk", std::string(10000, 'j'))
               .finish());
  apply_ok(TarBuilder(TarBuilder::Compression::kZstd)
               .whiteout("etc/.wh.shadow")
               .whiteout("var/cache/.wh..wh..opq")
               .file("var/cache/fresh", "f")
               .hardlink("usr/bin/ping-again", "usr/bin/ping6")
               .file("tmp/\xe2\x9c\x93", "utf8", meta(01777))
               .finish());
  std::string image = tmp_ / "layers.erofs";
  auto stats = testing::write_image(tree_, *spool_, image);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  if (testing::have_fsck_erofs()) {
    EXPECT_EQ(testing::fsck_erofs(image), "");
  }
  if (!testing::can_mount_erofs()) GTEST_SKIP() << "cannot mount erofs here";
  testing::Mount mount(image, tmp_ / "mnt");
  ASSERT_TRUE(mount.ok());
  testing::TreeComparer cmp(*spool_);
  cmp.count_links(tree_.root());
  cmp.compare(tree_.root(), tmp_ / "mnt");
  cmp.check_nlink();
  struct stat st {};
  EXPECT_NE(::lstat((tmp_ / "mnt/etc/shadow").c_str(), &st), 0);
  EXPECT_NE(::lstat((tmp_ / "mnt/var/cache/junk").c_str(), &st), 0);
  ASSERT_EQ(::lstat((tmp_ / "mnt/usr/bin/ping-again").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 3u);
}

}  // namespace
}  // namespace moat::image
