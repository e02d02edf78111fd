// What changed in a sandbox's root against its image: each path whose state
// in the merged root differs from the lower's, as `docker diff` reports it.
//
//   A  the path exists now and not in the lower (every path below an added
//      directory is listed too)
//   D  the path was in the lower and is gone (a deleted directory is one line)
//   C  the path is in both and differs: type, permission bits, owner, mtime,
//      size, device number, symlink target, visible xattrs, or contents (a
//      file copied up by a metadata-only change is C too; one copied up and
//      left as it was is not)
//
// Under an opaque or redirected directory, the lower the guest sees there is
// not the lower at that path: the comparison is always against the lower
// at the same path, so a directory removed and made again shows its lost
// entries as D and its new ones as A.
#pragma once

#include <string>
#include <vector>

#include "root_view/overlay_view.h"

namespace moat::root_view {

struct RootChange {
  char kind = 'C';  // 'A', 'C' or 'D'
  std::string path;
};

// In path order (a directory before what is below it).
Result<std::vector<RootChange>> diff_root(const OverlayView& view);

}  // namespace moat::root_view
