#include "root_view/root_export.h"

#include <cerrno>

namespace moat::root_view {
namespace {

constexpr int kMaxDepth = static_cast<int>(image::kErofsMaxPathComponents);

}  // namespace

Status write_merged_dir(const OverlayView& view, TarWriter& tar, const std::string& prefix, const MergedDir& dir,
                        int depth) {
  if (depth > kMaxDepth) return make_error("the root is nested too deeply at /" + prefix, ELOOP);
  MOAT_ASSIGN_OR_RETURN(auto children, view.children(dir));
  for (const auto& [name, e] : children) {
    std::string path = prefix + name;
    MOAT_TRY(tar.add(view, path, e));
    if (!e.is_dir()) continue;
    MOAT_ASSIGN_OR_RETURN(auto sub, view.child_dir(dir, name, e));
    MOAT_TRY(write_merged_dir(view, tar, path + "/", sub, depth + 1));
  }
  return ok_status();
}

Status export_root(const OverlayView& view, int out_fd) {
  MOAT_ASSIGN_OR_RETURN(auto tar, TarWriter::to_fd(out_fd));
  MOAT_TRY(write_merged_dir(view, tar, "", view.root(), 0));
  return tar.finish();
}

}  // namespace moat::root_view
