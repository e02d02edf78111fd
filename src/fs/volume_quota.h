// The size limit of a directory volume (`-v SRC:DST:size=1g`): how much of
// the host's disk the guest may use through the server, and what it has used.
//
// What counts: a regular file its size rounded up to 4 KiB (at least 4 KiB,
// so a flood of empty files is bounded too); a directory, symlink or other
// entry 4 KiB; each further hard link of a file 4 KiB (its data once). Sizes are apparent sizes,
// so a sparse file counts at its full length and a write into a hole needs no
// room. The usage is measured once, when the server starts, by walking the
// tree, and then follows every change the server makes. Changes made on the
// host (or by another sandbox sharing the directory) are seen only at the
// next start; xattrs and directory growth are not counted.
//
// An unlinked file that is still open keeps counting until its last close:
// the host keeps its data that long.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <map>
#include <set>
#include <utility>

#include "util/result.h"

namespace moat::fs {

class VolumeQuota {
 public:
  static constexpr std::uint64_t kBlock = 4096;

  static std::uint64_t file_cost(std::uint64_t size);
  static std::uint64_t cost(const struct stat& st);

  // The usage of the tree under `root`: symlinks not followed, other
  // filesystems mounted inside not entered. The root itself is free.
  static Result<std::uint64_t> measure(const std::string& root);

  VolumeQuota(std::uint64_t limit, std::uint64_t usage) : limit_(limit), usage_(usage) {}

  // Every check and change below happens under this lock, held across the
  // host operation it accounts: two requests never both take the last room.
  std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(mu_); }

  std::uint64_t limit() const { return limit_; }
  std::uint64_t usage() const { return usage_; }
  // What may still be added (0 when the volume is full or over).
  std::uint64_t room() const { return usage_ < limit_ ? limit_ - usage_ : 0; }
  bool fits(std::uint64_t more) const { return more <= room(); }

  // An inode's cost went from `before` to `after`.
  void adjust(std::uint64_t before, std::uint64_t after);
  void charge(std::uint64_t bytes) { adjust(0, bytes); }
  void release(std::uint64_t bytes) { adjust(bytes, 0); }

  // Open handles per inode (`st` of the file).
  void opened(const struct stat& st) { ++open_[key(st)]; }
  // True if this was the last handle of an unlinked inode whose cost is
  // still charged: the caller releases it.
  bool closed(const struct stat& st);
  // The last name of the inode `st` describes is gone: its cost is released
  // now, or at its last close if it is open.
  void last_link_removed(const struct stat& st);
  // An unlinked inode may be opened again (by node id) only while its cost
  // is still charged; otherwise its data would use the disk uncounted.
  bool may_reopen(const struct stat& st) const;

 private:
  std::mutex mu_;
  std::uint64_t limit_;
  std::uint64_t usage_;
  using Key = std::pair<dev_t, ino_t>;
  static Key key(const struct stat& st) { return {st.st_dev, st.st_ino}; }

  std::map<Key, std::uint64_t> open_;
  std::set<Key> orphans_;  // unlinked, open, still charged
};

}  // namespace moat::fs
