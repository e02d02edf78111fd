// LayerApplier: applies OCI layer tars, base first, to an FsTree with the
// semantics of the OCI image spec (as umoci implements them):
//
//  - `.wh.NAME` deletes NAME, and `.wh..wh..opq` hides a directory's contents,
//    but only what lower layers put there: entries of the same layer survive
//    wherever the marker appears in the tar. Markers never reach the tree.
//    `.wh..wh.*` names other than the opaque marker are AUFS bookkeeping and
//    are skipped.
//  - A directory over a directory replaces the metadata and keeps the
//    children; any other entry replaces what was at its path.
//  - A hardlink shares the inode of its target as found in the tree at that
//    moment (this layer or a lower one); a missing target is an error.
//  - Missing parent directories are created 0755 root:root, mtime 0.
//  - Paths are handled lexically (tree_path.h). An entry whose parent path
//    runs through a symlink or a non-directory is rejected: nothing ever
//    follows a symlink, so nothing can land outside the tree.
//  - The root directory takes its metadata from a "./" entry if a layer has one.
//
// Xattrs the kernel cannot show from EROFS (no known prefix) are dropped, as
// are trusted.overlay.*, which would steer the overlayfs that stacks the
// image in the guest. Both are counted in the stats.
//
// On error the tree is left half-applied; callers discard it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "image/erofs/fs_tree.h"
#include "image/erofs/spool.h"
#include "image/layers/tar_reader.h"
#include "util/result.h"

namespace moat::image {

// Bounds for hostile layers, over the whole image (all layers together).
struct LayerLimits {
  // About 300-400 bytes of memory per entry while the tree is built.
  std::uint64_t max_entries = 1'000'000;
  std::uint64_t max_content_bytes = std::uint64_t{64} << 30;       // regular-file data
  std::uint64_t max_uncompressed_bytes = std::uint64_t{128} << 30;  // tar streams
  std::size_t max_path_length = 4096;
  std::size_t max_xattr_bytes_per_entry = 128 * 1024;
  // Paths one layer touches are remembered for its whiteouts; this bounds
  // their total length (deep hostile paths would otherwise cost memory).
  std::uint64_t max_layer_path_bytes = std::uint64_t{256} << 20;
};

struct LayerStats {
  std::uint64_t entries = 0;
  std::uint64_t content_bytes = 0;
  std::uint64_t uncompressed_bytes = 0;
  std::uint64_t whiteouts = 0;
  std::uint64_t dropped_xattrs = 0;
};

class LayerApplier {
 public:
  LayerApplier(FsTree& tree, Spool& spool, LayerLimits limits = {})
      : tree_(tree), spool_(spool), limits_(limits) {}

  // Applies one layer; returns its diff_id ("sha256:…" of the uncompressed tar).
  Result<std::string> apply(TarReader& reader);

  const LayerStats& stats() const { return stats_; }

 private:
  Status apply_entry(TarReader& reader, TarEntry& entry);
  Status apply_whiteout(const std::vector<std::string_view>& path);
  Status apply_root(const TarEntry& entry);
  Result<Inode*> walk_parent(const std::vector<std::string_view>& path, bool create);
  Status add_entry(TarReader& reader, TarEntry& entry, Inode& parent,
                   const std::vector<std::string_view>& path);
  Result<InodePtr> resolve_hardlink(const std::string& target);
  Result<InodePtr> new_inode(TarReader& reader, TarEntry& entry);
  Status read_content(TarReader& reader, const TarEntry& entry, Inode& inode);
  void set_metadata(Inode& inode, TarEntry& entry);
  Status mark_upper(const std::vector<std::string_view>& path);
  void prune(Inode& parent, const std::string& name, const std::string& path);

  FsTree& tree_;
  Spool& spool_;
  LayerLimits limits_;
  LayerStats stats_;
  // Paths this layer created or went through; whiteouts spare them.
  std::unordered_set<std::string> upper_;
  std::uint64_t upper_bytes_ = 0;
  std::string buf_;
};

}  // namespace moat::image
