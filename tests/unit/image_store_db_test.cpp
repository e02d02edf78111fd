#include "image/store/image_db.h"

#include <gtest/gtest.h>

#include <thread>

#include "../image/erofs_check.h"

namespace moat::image {
namespace {

std::string d(char c) { return "sha256:" + std::string(64, c); }

ImageRecord sample(char m, char cfg, std::vector<char> layers) {
  ImageRecord r;
  r.manifest_digest = d(m);
  r.media_type = "application/vnd.oci.image.manifest.v1+json";
  r.config_digest = d(cfg);
  r.platform = "linux/amd64";
  r.manifest_size = 500;
  r.config_size = 700;
  std::uint64_t size = 1000;
  for (char l : layers) {
    r.layers.push_back(LayerRecord{d(l), "application/vnd.oci.image.layer.v1.tar+gzip",
                                   "sha256:" + std::string(63, l) + "0", size});
    size += 1000;
  }
  return r;
}

class ImageStoreDb : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = ImageDb::open(tmp_ / "moat.db");
    ASSERT_TRUE(db.ok()) << db.error().message;
    db_ = std::move(*db);
  }
  testing::TempDir tmp_;
  std::unique_ptr<ImageDb> db_;
};

TEST_F(ImageStoreDb, PutAndReadBackExactly) {
  ImageRecord img = sample('1', '2', {'3', '4'});
  ASSERT_TRUE(db_->put_image(img, RefRecord{"r.io/a:1", d('9'), img.manifest_digest, 1234}).ok());
  auto ref = db_->get_ref("r.io/a:1");
  ASSERT_TRUE(ref.ok());
  ASSERT_TRUE(ref->has_value());
  EXPECT_EQ((*ref)->digest, d('9'));
  EXPECT_EQ((*ref)->manifest_digest, d('1'));
  EXPECT_EQ((*ref)->updated, 1234);
  auto back = db_->get_image(d('1'));
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE(back->has_value());
  const ImageRecord& b = **back;
  EXPECT_EQ(b.media_type, img.media_type);
  EXPECT_EQ(b.config_digest, d('2'));
  EXPECT_EQ(b.platform, "linux/amd64");
  EXPECT_EQ(b.manifest_size, 500u);
  EXPECT_EQ(b.config_size, 700u);
  ASSERT_EQ(b.layers.size(), 2u);
  EXPECT_EQ(b.layers[0].blob_digest, d('3'));
  EXPECT_EQ(b.layers[1].blob_digest, d('4'));
  EXPECT_EQ(b.layers[1].diff_id, "sha256:" + std::string(63, '4') + "0");
  EXPECT_EQ(b.layers[1].size, 2000u);
  EXPECT_EQ(b.total_size(), 500u + 700u + 1000u + 2000u);
  auto missing = db_->get_ref("r.io/a:2");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST_F(ImageStoreDb, RefsAreListedSortedAndRepointed) {
  ImageRecord a = sample('1', '2', {'3'});
  ImageRecord b = sample('5', '6', {'7'});
  ASSERT_TRUE(db_->put_image(a, RefRecord{"r.io/z:1", d('1'), d('1'), 0}).ok());
  ASSERT_TRUE(db_->put_image(a, RefRecord{"r.io/b:1", d('1'), d('1'), 0}).ok());
  ASSERT_TRUE(db_->put_image(b, RefRecord{"r.io/z:1", d('5'), d('5'), 0}).ok());
  auto refs = db_->list_refs();
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_EQ((*refs)[0].name, "r.io/b:1");
  EXPECT_EQ((*refs)[0].manifest_digest, d('1'));
  EXPECT_EQ((*refs)[1].name, "r.io/z:1");
  EXPECT_EQ((*refs)[1].manifest_digest, d('5'));
}

TEST_F(ImageStoreDb, RemoveKeepsWhatOtherImagesUse) {
  ImageRecord a = sample('1', '2', {'3', '4'});
  ImageRecord b = sample('5', '6', {'4', '7'});  // shares layer 4 with a
  ASSERT_TRUE(db_->put_image(a, RefRecord{"r.io/a:1", d('1'), d('1'), 0}).ok());
  ASSERT_TRUE(db_->put_image(a, RefRecord{"r.io/a:latest", d('1'), d('1'), 0}).ok());
  ASSERT_TRUE(db_->put_image(b, RefRecord{"r.io/b:1", d('8'), d('5'), 0}).ok());

  bool removed = true;
  auto unused = db_->remove_ref("r.io/a:1", &removed);
  ASSERT_TRUE(unused.ok()) << unused.error().message;
  EXPECT_FALSE(removed);
  EXPECT_EQ(*unused, std::vector<std::string>{});

  unused = db_->remove_ref("r.io/a:latest", &removed);
  ASSERT_TRUE(unused.ok());
  EXPECT_TRUE(removed);
  EXPECT_EQ(*unused, (std::vector<std::string>{d('1'), d('2'), d('3')}));
  auto gone = db_->get_image(d('1'));
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());

  unused = db_->remove_ref("r.io/b:1", &removed);
  ASSERT_TRUE(unused.ok());
  EXPECT_TRUE(removed);
  EXPECT_EQ(*unused, (std::vector<std::string>{d('8'), d('5'), d('6'), d('4'), d('7')}));

  auto none = db_->remove_ref("r.io/b:1", &removed);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message, "no such image: r.io/b:1");
}

TEST_F(ImageStoreDb, AddRefNamesARecordedImageOnly) {
  ImageRecord a = sample('1', '2', {'3'});
  ASSERT_TRUE(db_->put_image(a, RefRecord{"r.io/a:1", d('9'), d('1'), 0}).ok());
  ASSERT_TRUE(db_->add_ref(RefRecord{"r.io/b:x", d('9'), d('1'), 77}).ok());
  auto b = db_->get_ref("r.io/b:x");
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->digest, d('9'));
  EXPECT_EQ((*b)->manifest_digest, d('1'));
  EXPECT_EQ((*b)->updated, 77);

  auto missing = db_->add_ref(RefRecord{"r.io/c:1", d('5'), d('5'), 0});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "no image recorded for " + d('5'));
  auto c = db_->get_ref("r.io/c:1");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_value());

  // Removing the added name keeps the image for the original one.
  bool removed = true;
  auto unused = db_->remove_ref("r.io/b:x", &removed);
  ASSERT_TRUE(unused.ok());
  EXPECT_FALSE(removed);
  EXPECT_EQ(*unused, std::vector<std::string>{});
  auto img = db_->get_image(d('1'));
  ASSERT_TRUE(img.ok());
  EXPECT_TRUE(img->has_value());
}

TEST_F(ImageStoreDb, ConcurrentWritersFromSeparateConnections) {
  auto other = ImageDb::open(tmp_ / "moat.db");
  ASSERT_TRUE(other.ok());
  constexpr int kEach = 50;
  auto writer = [](ImageDb* db, char tag) {
    for (int i = 0; i < kEach; ++i) {
      ImageRecord img = sample(tag, '2', {'3'});
      std::string name = std::string("r.io/") + tag + ":" + std::to_string(i);
      ASSERT_TRUE(db->put_image(img, RefRecord{name, img.manifest_digest, img.manifest_digest, 0}).ok());
    }
  };
  std::thread t1(writer, db_.get(), 'a');
  std::thread t2(writer, other->get(), 'b');
  t1.join();
  t2.join();
  auto refs = db_->list_refs();
  ASSERT_TRUE(refs.ok());
  EXPECT_EQ(refs->size(), 2u * kEach);
}

}  // namespace
}  // namespace moat::image
