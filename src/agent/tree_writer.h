// TreeWriter: creates the entries of an archive beneath one directory and
// nowhere else. Every path is walked one component at a time with
// openat(O_NOFOLLOW | O_DIRECTORY), so neither an absolute name, a "..", nor
// a symlink created by an earlier entry of the same archive (`d -> /etc`
// followed by `d/passwd`) can lead a write out of the root. Used by the
// guest's tar_in extractor and by the host's copy_out extractor, where the
// archive comes from a guest that may be hostile.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/file_ops.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::agent {

struct TreeEntry {
  std::string path;  // relative archive name, "a/b/c" ("./" prefixes and trailing "/" allowed)
  proto::FileType type = proto::FileType::kFile;
  bool hardlink = false;  // `link` names an earlier entry to link to
  std::string link;       // symlink target (any text) or hardlink target (archive name)
  std::uint32_t mode = 0644;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int64_t mtime_sec = 0;
  std::uint64_t size = 0;  // regular files: bytes that follow via write()
};

struct TreeWriterOptions {
  bool chown = true;              // apply uid/gid (needs privilege)
  std::uint32_t mode_mask = 07777;  // e.g. 01777 drops setuid/setgid
  // When set, every entry (and hardlink target) must be this name or lie
  // under it: an archive cannot touch siblings of what it was asked for.
  std::string required_top;
  std::size_t max_dirs = 1 << 20;  // directories whose metadata is applied at finish()
};

// Splits an archive name into components; rejects absolute names, "..",
// NUL bytes and over-long components with an EINVAL error.
Result<std::vector<std::string>> split_archive_path(std::string_view path);

// Opens the directory `components[0..count)` beneath `root` without following
// any symlink; creates missing directories (0755) when `create` is set.
Result<UniqueFd> open_dir_beneath(int root, const std::vector<std::string>& components,
                                  std::size_t count, bool create);

class TreeWriter {
 public:
  // `root` is borrowed and must stay open.
  TreeWriter(int root, TreeWriterOptions options);

  // Starts an entry. For a regular file with size > 0, write() must follow
  // with exactly `size` bytes; everything else is complete on return.
  Status begin(const TreeEntry& e);
  Status write(std::string_view data);
  // Applies the deferred directory modes and times (so a read-only directory
  // can still be filled first). Call once after the last entry.
  Status finish();

  std::uint64_t entries() const { return entries_; }
  std::uint64_t bytes() const { return bytes_; }
  bool in_file() const { return file_.valid(); }

 private:
  struct PendingDir {
    std::vector<std::string> components;
    std::uint32_t mode, uid, gid;
    std::int64_t mtime_sec;
  };
  Result<std::vector<std::string>> checked_components(std::string_view path) const;
  Status remove_non_dir(int parent, const std::string& leaf);
  Status finish_file();
  Status apply_meta(int fd, const char* leaf, const TreeEntry& e, bool nofollow);

  int root_;
  TreeWriterOptions opt_;
  std::vector<PendingDir> dirs_;
  UniqueFd file_;
  TreeEntry current_;
  std::uint64_t remaining_ = 0;
  std::uint64_t entries_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace moat::agent
