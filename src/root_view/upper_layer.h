// The upper disk as an OCI layer (`moat commit`): an uncompressed tar of
// what the guest changed, in the image-spec's whiteout form:
//
//  - a whiteout (character device 0:0) becomes an empty file ".wh.NAME";
//  - an opaque directory gets a ".wh..wh..opq" entry first;
//  - a directory renamed by the guest (trusted.overlay.redirect) cannot be
//    said as a rename in a layer: it is written whole, as the guest sees
//    it (its lower part from the redirect's path included), and opaque;
//  - everything else as it is in the upper, with owners, modes, nanosecond
//    mtimes, xattrs (overlayfs's own left out) and hard links as links.
//
// Left out: /etc/hostname, /etc/hosts and /etc/resolv.conf, which every
// boot writes anew for the sandbox it boots (as `docker commit` leaves out
// the files Docker mounts there).
#pragma once

#include "root_view/overlay_view.h"

namespace moat::root_view {

Status write_upper_layer(const OverlayView& view, int out_fd);

}  // namespace moat::root_view
