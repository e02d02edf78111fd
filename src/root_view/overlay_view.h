// A sandbox's root as its guest sees it, computed from the two disks
// without the guest: the ext4 upper (its /upper directory) over the EROFS
// lower, with the rules of overlayfs as the guest mounts it
// (redirect_dir=on, index=off, metacopy=off; src/agent/system_setup.cpp):
//
//  - a character device 0:0 in the upper is a whiteout: the name is gone;
//  - an upper directory with trusted.overlay.opaque "y" hides the lower one;
//  - an upper directory with trusted.overlay.redirect is a renamed lower
//    directory: its lower part is at the redirect's path (absolute from the
//    lower's root, else relative to the parent's lower directory);
//  - any other upper directory merges with the lower directory of its name;
//  - an upper entry of another type replaces the lower one.
//
// trusted.overlay.* attributes are overlayfs's own and never part of what
// the guest sees.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "image/erofs/erofs_reader.h"
#include "root_view/ext4_tree_reader.h"

namespace moat::root_view {

// One entry of the merged root: its attributes, and where they come from.
struct RootEntry {
  std::uint32_t mode = 0;
  std::uint32_t uid = 0, gid = 0;
  std::uint32_t nlink = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_sec = 0;
  std::uint32_t mtime_nsec = 0;
  std::uint32_t rdev_major = 0, rdev_minor = 0;
  std::optional<Ino> upper;              // the upper inode that gives it, if any
  std::optional<image::ErofsNid> lower;  // else the lower inode
  std::uint32_t type() const { return mode & 0170000; }
  bool is_dir() const { return type() == 0040000; }
  bool is_regular() const { return type() == 0100000; }
  bool is_symlink() const { return type() == 0120000; }
};

// A merged directory: its upper part, and the lower directory that shows
// through it (none under an opaque directory or for an upper-only one).
struct MergedDir {
  std::optional<Ino> upper;
  std::optional<image::ErofsNid> lower;
  std::string lower_path;  // of `lower`, for relative redirects
  // The upper directory's overlay marks (trusted.overlay.opaque "y",
  // trusted.overlay.redirect present).
  bool opaque = false;
  bool redirected = false;
};

// "/" + name, or dir + "/" + name.
std::string join_root_path(const std::string& dir, const std::string& name);

RootEntry entry_of(const Ext4Inode& n);
RootEntry entry_of(const image::ErofsInode& n);

inline constexpr const char* kOverlayXattrPrefix = "trusted.overlay.";

class OverlayView {
 public:
  // `upper_dir` is the upper filesystem's /upper directory (absent in a disk
  // that never booted: then the view is the lower alone).
  OverlayView(const Ext4TreeReader& upper, std::optional<Ino> upper_dir, const image::ErofsReader& lower)
      : upper_(upper), upper_dir_(upper_dir), lower_(lower) {}

  MergedDir root() const;
  // The merged children of `dir`, sorted by name, whiteouts applied.
  Result<std::vector<std::pair<std::string, RootEntry>>> children(const MergedDir& dir) const;
  // The merged directory a child directory entry of `parent` is.
  Result<MergedDir> child_dir(const MergedDir& parent, const std::string& name, const RootEntry& entry) const;
  // The entries of a lower directory (not "." or ".."), in on-disk order, at
  // most kMaxDirEntries.
  Result<std::vector<std::pair<std::string, image::ErofsNid>>> lower_entries(image::ErofsNid dir) const;

  // What the guest sees of an entry: its xattrs (overlayfs's own left out),
  // symlink target, and file contents.
  Result<Xattrs> visible_xattrs(const RootEntry& e) const;
  Result<std::string> readlink(const RootEntry& e) const;
  Result<std::size_t> read(const RootEntry& e, std::uint64_t offset, void* buf, std::size_t len) const;

  const Ext4TreeReader& upper() const { return upper_; }
  const image::ErofsReader& lower() const { return lower_; }

 private:
  const Ext4TreeReader& upper_;
  std::optional<Ino> upper_dir_;
  const image::ErofsReader& lower_;
};

}  // namespace moat::root_view
