#include "root_view/upper_layer.h"

#include <cerrno>
#include <set>

#include "root_view/tar_writer.h"

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
      MOAT_ASSIGN_OR_RETURN(auto redirect, has_xattr(ino, "redirect"));
      MOAT_ASSIGN_OR_RETURN(auto opaque, has_xattr(ino, "opaque"));
      if (redirect) {
        MOAT_TRY(tar_.add_marker(path + "/.wh..wh..opq", 0644));
        MOAT_TRY(whole_dir(path + "/", sub, depth + 1));
      } else {
        if (opaque) MOAT_TRY(tar_.add_marker(path + "/.wh..wh..opq", 0644));
        MOAT_TRY(upper_dir(path + "/", sub, depth + 1));
      }
    }
    return ok_status();
  }

 private:
  // Everything the guest sees below a renamed directory.
  Status whole_dir(const std::string& prefix, const MergedDir& dir, int depth) {
    if (depth > kMaxDepth) return make_error("the root is nested too deeply at /" + prefix, ELOOP);
    MOAT_ASSIGN_OR_RETURN(auto children, v_.children(dir));
    for (const auto& [name, e] : children) {
      MOAT_TRY(tar_.add(v_, prefix + name, e));
      if (!e.is_dir()) continue;
      MOAT_ASSIGN_OR_RETURN(auto sub, v_.child_dir(dir, name, e));
      MOAT_TRY(whole_dir(prefix + name + "/", sub, depth + 1));
    }
    return ok_status();
  }

  Result<bool> has_xattr(Ino ino, const char* which) {
    MOAT_ASSIGN_OR_RETURN(auto all, v_.upper().xattrs(ino));
    std::string name = std::string(kOverlayXattrPrefix) + which;
    for (const auto& [k, v] : all)
      if (k == name) return std::string(which) != "opaque" || v == "y";
    return false;
  }

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
