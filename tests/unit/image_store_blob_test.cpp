#include "image/oci/blob_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "../image/erofs_check.h"
#include "image/oci/digest.h"

namespace moat::image {
namespace {

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

class ImageStoreBlob : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = BlobStore::open(tmp_ / "blobs");
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_.emplace(std::move(*s));
  }
  std::string incoming() { return tmp_ / "blobs/incoming"; }
  std::string sha256_dir() { return tmp_ / "blobs/sha256"; }

  testing::TempDir tmp_;
  std::optional<BlobStore> store_;
};

TEST_F(ImageStoreBlob, IngestBytesPublishesVerifiedBlob) {
  std::string data = "hello, blob";
  std::string digest = sha256_digest(data);
  ASSERT_TRUE(store_->ingest_bytes(data, digest).ok());
  std::string path = store_->path(digest);
  EXPECT_EQ(path, sha256_dir() + "/" + digest.substr(7));
  EXPECT_EQ(testing::read_file(path), data);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_TRUE(store_->has(digest, data.size()));
  EXPECT_FALSE(store_->has(digest, data.size() + 1));
  EXPECT_EQ(listing(incoming()), std::vector<std::string>{});
  auto back = store_->read_verified(digest, 1024);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, data);
}

TEST_F(ImageStoreBlob, DigestMismatchLeavesNoBlob) {
  std::string wrong = sha256_digest("something else");
  auto st = store_->ingest_bytes("payload", wrong);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message,
            "digest mismatch: expected " + wrong + ", got " + sha256_digest("payload"));
  EXPECT_EQ(listing(sha256_dir()), std::vector<std::string>{});
  EXPECT_EQ(listing(incoming()), std::vector<std::string>{});
}

TEST_F(ImageStoreBlob, TruncatedStreamLeavesNoBlob) {
  std::string data(100000, 'x');
  std::string digest = sha256_digest(data);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  std::thread writer([&] {
    // Only the first half arrives before the stream ends.
    ASSERT_EQ(::write(p[1], data.data(), 50000), 50000);
    ::close(p[1]);
  });
  auto st = store_->ingest_fd(p[0], digest, data.size());
  writer.join();
  ::close(p[0]);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message,
            "blob " + digest + " is truncated: got 50000 of 100000 bytes");
  EXPECT_EQ(listing(sha256_dir()), std::vector<std::string>{});
  EXPECT_EQ(listing(incoming()), std::vector<std::string>{});
}

TEST_F(ImageStoreBlob, OversizedStreamIsRejected) {
  std::string data = "0123456789";
  std::string file = tmp_ / "src";
  std::ofstream(file) << data;
  int fd = ::open(file.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  auto st = store_->ingest_fd(fd, sha256_digest("01234"), 5);
  ::close(fd);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "blob " + sha256_digest("01234") +
                                    " is larger than the 5 bytes its descriptor declares");
  EXPECT_EQ(listing(sha256_dir()), std::vector<std::string>{});
  EXPECT_EQ(listing(incoming()), std::vector<std::string>{});
}

TEST_F(ImageStoreBlob, InterruptedWriteResumesFromPartialFile) {
  std::string data;
  for (int i = 0; i < 20000; ++i) data += std::to_string(i);
  std::string digest = sha256_digest(data);
  {
    auto w = store_->begin(digest, data.size());
    ASSERT_TRUE(w.ok());
    EXPECT_EQ((*w)->offset(), 0u);
    ASSERT_TRUE((*w)->write(data.data(), 30000).ok());
    // Dropped here: the connection broke.
  }
  EXPECT_EQ(listing(incoming()), std::vector<std::string>{digest.substr(7) + ".partial"});
  EXPECT_FALSE(store_->has(digest, data.size()));
  auto w = store_->begin(digest, data.size());
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->offset(), 30000u);
  ASSERT_TRUE((*w)->write(data.data() + 30000, data.size() - 30000).ok());
  ASSERT_TRUE((*w)->commit().ok());
  EXPECT_EQ(testing::read_file(store_->path(digest)), data);
  EXPECT_EQ(listing(incoming()), std::vector<std::string>{});
}

TEST_F(ImageStoreBlob, CorruptPartialFileIsDroppedOnMismatch) {
  std::string data(5000, 'a');
  std::string digest = sha256_digest(data);
  {
    auto w = store_->begin(digest, data.size());
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->write(std::string(1000, 'b').data(), 1000).ok());
  }
  auto w = store_->begin(digest, data.size());
  ASSERT_TRUE(w.ok());
  ASSERT_EQ((*w)->offset(), 1000u);
  ASSERT_TRUE((*w)->write(data.data(), 4000).ok());
  auto st = (*w)->commit();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, EBADMSG);
  EXPECT_EQ(listing(incoming()), std::vector<std::string>{});
  EXPECT_EQ(listing(sha256_dir()), std::vector<std::string>{});
  auto again = store_->begin(digest, data.size());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->offset(), 0u);
}

TEST_F(ImageStoreBlob, ConcurrentWritersOfOneDigestBothSucceed) {
  std::string data(1 << 20, 'z');
  std::string digest = sha256_digest(data);
  auto a = store_->begin(digest, data.size());
  auto b = store_->begin(digest, data.size());  // a holds the partial: b gets a temp file
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(listing(incoming()).size(), 2u);
  std::thread ta([&] { ASSERT_TRUE((*a)->write(data.data(), data.size()).ok()); });
  std::thread tb([&] { ASSERT_TRUE((*b)->write(data.data(), data.size()).ok()); });
  ta.join();
  tb.join();
  ASSERT_TRUE((*b)->commit().ok());
  ASSERT_TRUE((*a)->commit().ok());
  a->reset();
  b->reset();
  EXPECT_EQ(testing::read_file(store_->path(digest)), data);
  EXPECT_EQ(listing(incoming()), std::vector<std::string>{});
  EXPECT_EQ(listing(sha256_dir()), std::vector<std::string>{digest.substr(7)});
}

TEST_F(ImageStoreBlob, ReadVerifiedDetectsCorruptionAndBounds) {
  std::string data = "{\"config\":1}";
  std::string digest = sha256_digest(data);
  ASSERT_TRUE(store_->ingest_bytes(data, digest).ok());
  auto too_big = store_->read_verified(digest, 4);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.error().code, EFBIG);
  ::chmod(store_->path(digest).c_str(), 0644);
  std::ofstream(store_->path(digest)) << "{\"config\":2}";
  auto corrupt = store_->read_verified(digest, 1024);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_EQ(corrupt.error().message, "blob " + digest + " on disk is corrupt (digest mismatch)");
}

TEST_F(ImageStoreBlob, InvalidDigestIsRejected) {
  auto w = store_->begin("sha256:../../etc/passwd", 1);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, EINVAL);
  EXPECT_FALSE(store_->has("md5:abc", 1));
}

}  // namespace
}  // namespace moat::image
