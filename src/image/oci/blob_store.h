// BlobStore: content-addressed blobs under $MOAT_HOME/blobs/sha256/<hex>.
//
// A blob becomes visible under its digest only after its size and sha256
// have been checked against what the manifest promised: data goes to a file
// in blobs/incoming/ first, is fsynced, and is renamed into place. rename()
// is atomic, and every writer of a digest writes identical bytes, so several
// processes pulling the same blob at once are safe: the last rename wins and
// readers always see a whole, verified file.
//
// Downloads that break off keep their bytes in blobs/incoming/<hex>.partial
// so a later attempt (or a later process) can resume with an HTTP Range
// request. The partial file is locked (flock) while a writer owns it; a
// second writer of the same digest meanwhile uses a private temp file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::image {

class BlobWriter;

class BlobStore {
 public:
  // Uses (and creates) <root>/sha256 and <root>/incoming.
  static Result<BlobStore> open(const std::string& root);

  // $MOAT_HOME/blobs
  static std::string default_root(const std::string& moat_home) { return moat_home + "/blobs"; }

  const std::string& root() const { return root_; }
  // Where the blob lives (whether or not it exists); `digest` must be valid.
  std::string path(std::string_view digest) const;
  // True if a complete blob of this digest and size is present.
  bool has(std::string_view digest, std::uint64_t size) const;

  // Starts writing a blob that must end up `size` bytes with `digest`.
  // Resumes a partial file left by an earlier attempt if there is one.
  Result<std::unique_ptr<BlobWriter>> begin(std::string_view digest, std::uint64_t size) const;

  // Whole-blob helpers: read everything from `fd` (or take `data`), verify,
  // publish. Nothing is visible under the digest unless verification passed.
  Status ingest_fd(int fd, std::string_view digest, std::uint64_t size) const;
  Status ingest_bytes(std::string_view data, std::string_view digest) const;

  // Reads a small blob (manifest, config) into memory, refusing more than
  // `max_size` bytes, and re-checks its digest: blobs on disk are not trusted
  // blindly either.
  Result<std::string> read_verified(std::string_view digest, std::size_t max_size) const;

  Status remove(std::string_view digest) const;

 private:
  explicit BlobStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

// Writes one blob; see BlobStore::begin. Not thread-safe; one per download.
class BlobWriter {
 public:
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  // Bytes written so far (including what a resumed partial file held).
  std::uint64_t offset() const { return offset_; }
  std::uint64_t expected_size() const { return size_; }
  bool complete() const { return offset_ == size_; }

  // Appends; fails once the data would exceed the expected size.
  Status write(const void* data, std::size_t len);
  // Throws away what was written (the server ignored a Range request).
  Status restart();
  // Checks size and digest, fsyncs and publishes the blob. On a mismatch the
  // partial data is deleted, so a bad download is never resumed.
  Status commit();
  // Deletes the partial data now instead of keeping it for a resume.
  void discard();

 private:
  friend class BlobStore;
  BlobWriter() = default;
  Status hash_existing();

  std::string digest_;
  std::string final_path_;
  std::string temp_path_;
  bool keep_on_close_ = false;  // a locked .partial file is kept for resume
  bool done_ = false;
  UniqueFd fd_;
  std::uint64_t size_ = 0;
  std::uint64_t offset_ = 0;
  struct Hasher;
  std::unique_ptr<Hasher> hasher_;
};

}  // namespace moat::image
