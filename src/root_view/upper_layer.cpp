#include "root_view/upper_layer.h"

#include <cerrno>
#include <set>

#include "root_view/root_export.h"

namespace moat::root_view {
namespace {

constexpr int kMaxDepth = static_cast<int>(image::kErofsMaxPathComponents);
const std::set<std::string> kBootWritten = {"etc/hostname", "etc/hosts", "etc/resolv.conf"};

class LayerWriter {
 public:
  LayerWriter(const OverlayView& v, TarWriter& tar) : v_(v), tar_(tar) {}

  // The upper part of merged directory `dir` (at `prefix`, "" or "a/b/").
  Status upper_dir(const std::string& prefix, const MergedDir& dir, int depth) {
    if (depth > kMaxDepth) return make_error("the upper is nested too deeply at /" + prefix, ELOOP);
    MOAT_ASSIGN_OR_RETURN(auto names, v_.upper().list(*dir.upper));
    for (const auto& [name, ino] : names) {
      std::string path = prefix + name;
      MOAT_ASSIGN_OR_RETURN(auto n, v_.upper().inode(ino));
      if (n.is_whiteout()) {
        MOAT_TRY(tar_.add_marker(prefix + ".wh." + name, 0644));
        continue;
      }
      if (kBootWritten.count(path)) continue;
      RootEntry e = entry_of(n);
      MOAT_TRY(tar_.add(v_, path, e));
      if (!e.is_dir()) continue;
      MOAT_ASSIGN_OR_RETURN(auto sub, v_.child_dir(dir, name, e));
      if (sub.redirected) {
        MOAT_TRY(tar_.add_marker(path + "/.wh..wh..opq", 0644));
        MOAT_TRY(write_merged_dir(v_, tar_, path + "/", sub, depth + 1));
      } else {
        if (sub.opaque) MOAT_TRY(tar_.add_marker(path + "/.wh..wh..opq", 0644));
        MOAT_TRY(upper_dir(path + "/", sub, depth + 1));
      }
    }
    return ok_status();
  }

 private:
  const OverlayView& v_;
  TarWriter& tar_;
};

}  // namespace

Status write_upper_layer(const OverlayView& view, int out_fd) {
  MOAT_ASSIGN_OR_RETURN(auto tar, TarWriter::to_fd(out_fd));
  MergedDir root = view.root();
  if (root.upper) {
    LayerWriter w(view, tar);
    MOAT_TRY(w.upper_dir("", root, 0));
  }
  return tar.finish();
}

}  // namespace moat::root_view
