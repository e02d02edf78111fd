// `moat image fsck`: checks that what the store holds for an image is still
// what the pull verified. Blobs are trusted by name once published and the
// root is trusted once built, so disk corruption or a stray write would
// otherwise go unnoticed until a guest reads garbage.
//
// For each image:
//   - every blob it references (the ref's digest, manifest, config, layers)
//     is re-hashed and its size compared with the recorded one;
//   - the EROFS root exists and `fsck.erofs` accepts it;
//   - the root is byte-identical to a fresh build from the layers (the
//     builder is deterministic), built next to it in the images directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image/store/image_store.h"
#include "util/result.h"

namespace moat::image {

struct FsckReport {
  std::string ref;                    // canonical ref, or the argument as given
  std::string digest;                 // what the ref resolved to; empty if unknown
  std::vector<std::string> problems;  // empty: the image is sound

  bool ok() const { return problems.empty(); }
};

// Checks the images `refs` name, or every ref in the store when empty.
// Per-image problems go into the reports; only failures to read the store
// itself are errors.
Result<std::vector<FsckReport>> fsck_images(ImageStore& store, const std::vector<std::string>& refs);

// sha256 digest and size of a file, streamed.
struct FileDigest {
  std::string digest;
  std::uint64_t size = 0;
};
Result<FileDigest> hash_file(const std::string& path);

}  // namespace moat::image
