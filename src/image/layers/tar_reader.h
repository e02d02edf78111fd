// TarReader: reads a layer tar, plain or compressed (gzip, zstd, xz; detected
// from the data), one entry at a time, without unpacking anything.
//
// Two libarchive readers are chained: the first only decompresses, the second
// parses tar from the first's output; for regular files the first runs on its
// own thread. Sitting between them lets us hash the
// whole uncompressed stream (the layer's diff_id, which includes the padding
// after the end-of-archive blocks) and report a truncated or corrupt
// compressed stream as an error instead of a short archive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "image/erofs/fs_tree.h"
#include "util/result.h"

namespace moat::image {

struct TarEntry {
  std::string path;  // as stored, not normalised
  FileType type = FileType::kRegular;
  bool is_hardlink = false;
  std::string link_target;  // symlink target, or the hardlink's target path
  std::uint32_t mode = 0;   // permission bits (07777)
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  Timespec mtime;
  std::uint64_t size = 0;  // regular files
  std::uint32_t dev_major = 0;
  std::uint32_t dev_minor = 0;
  std::map<std::string, std::string> xattrs;
};

class TarReader {
 public:
  // Reads from `fd`, which stays owned by the caller and must outlive the reader.
  static Result<std::unique_ptr<TarReader>> open_fd(int fd);
  // Reads from memory that must outlive the reader.
  static Result<std::unique_ptr<TarReader>> open_memory(const void* data, std::size_t size);

  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // Next entry header; false at the end of the archive.
  Result<bool> next(TarEntry& entry);
  // Fails the stream once more than `bytes` have been decompressed: a bound
  // on tar bombs that holds whatever the archive's headers claim.
  void set_max_uncompressed(std::uint64_t bytes);

  // Contents of the current entry; 0 at its end.
  Result<std::size_t> read(void* buf, std::size_t size);

  // After next() returned false: "sha256:…" of the whole uncompressed stream
  // and its length.
  const std::string& diff_id() const { return diff_id_; }
  std::uint64_t uncompressed_size() const { return uncompressed_size_; }

 private:
  struct Impl;
  explicit TarReader(std::unique_ptr<Impl> impl);
  Status open(bool background);
  Error error(const char* what) const;
  Status finish_stream();

  std::unique_ptr<Impl> impl_;
  std::string diff_id_;
  std::uint64_t uncompressed_size_ = 0;
};

}  // namespace moat::image
