// Where a commit's layer goes as the root reader writes it: gzip into a
// file, with the sha256 of the tar (the layer's diff_id) and of the gzip
// (its blob digest) taken on the way.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat::sandbox {

class LayerSink {
 public:
  // Creates `path` (which must not exist).
  static Result<std::unique_ptr<LayerSink>> create(const std::string& path);
  ~LayerSink();

  Status write(std::string_view tar_bytes);
  // Flushes the gzip stream and syncs the file.
  Status finish();

  const std::string& diff_id() const { return diff_id_; }
  const std::string& digest() const { return digest_; }
  std::uint64_t size() const { return size_; }

 private:
  struct State;
  explicit LayerSink(std::unique_ptr<State> s);
  Status deflate_some(int flush);

  std::unique_ptr<State> s_;
  std::string diff_id_, digest_;
  std::uint64_t size_ = 0;
};

}  // namespace moat::sandbox
