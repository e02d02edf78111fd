// The merged root as a tar stream (`moat export`): every entry the guest
// sees in its root filesystem, with owners, modes, mtimes to the
// nanosecond, xattrs (overlayfs's own left out), symlinks, devices and
// fifos, and hard links as links. Pax format; names are written as bytes
// (hdrcharset=BINARY), never converted. Sockets cannot be in a tar and are
// left out.
#pragma once

#include "root_view/overlay_view.h"

namespace moat::root_view {

Status export_root(const OverlayView& view, int out_fd);

}  // namespace moat::root_view
