// The merged root as a tar stream (`moat export`): every entry the guest
// sees in its root filesystem, with owners, modes, mtimes to the
// nanosecond, xattrs (overlayfs's own left out), symlinks, devices and
// fifos, and hard links as links. Pax format; names are written as bytes
// (hdrcharset=BINARY), never converted. Sockets cannot be in a tar and are
// left out.
#pragma once

#include "root_view/overlay_view.h"
#include "root_view/tar_writer.h"

namespace moat::root_view {

Status export_root(const OverlayView& view, int out_fd);

// Everything the guest sees below merged directory `dir`, written under
// `prefix` ("" or "a/b/"); `depth` is dir's, for the nesting bound. Also
// what a layer holds of a renamed directory (upper_layer.h).
Status write_merged_dir(const OverlayView& view, TarWriter& tar, const std::string& prefix, const MergedDir& dir,
                        int depth);

}  // namespace moat::root_view
