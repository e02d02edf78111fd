// TreeWriter: creates the entries of an archive beneath one directory and
// nowhere else. Every path is walked one component at a time with
// openat(O_NOFOLLOW | O_DIRECTORY), so neither an absolute name, a "..", nor
// a symlink created by an earlier entry of the same archive (`d -> /etc`
// followed by `d/passwd`) can lead a write out of the root. Used by the
// guest's tar_in extractor and by the host's copy_out extractor, where the
// archive comes from a guest that may be hostile; there it also runs
// `transactional` (see TreeWriterOptions).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
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
  // When non-zero, an entry may lie at most this many directories below its
  // top-level name (the top is depth 0) and its name, once normalized, may
  // have at most `max_path_bytes` bytes: a sender cannot build a tree that
  // path-based tools on the receiving side cannot walk or remove.
  std::size_t max_depth = 0;
  std::size_t max_path_bytes = 0;
  // For an archive from a sender that is not trusted (the host's copy out):
  // - a directory that existed before keeps its mode and owner, and gets no
  //   times from the archive;
  // - a regular file is written under a temporary name in its directory and
  //   renamed into place only once complete, so no reader sees half a file;
  // - an existing entry the archive replaces is kept aside until finish();
  // - abort() removes everything the writer created and puts back what it
  //   replaced, so a failed extraction leaves the tree as it was.
  bool transactional = false;
};

// Splits an archive name into components; rejects absolute names, "..",
// NUL bytes and over-long components with an EINVAL error.
Result<std::vector<std::string>> split_archive_path(std::string_view path);

// Opens the directory `components[0..count)` beneath `root` without following
// any symlink; creates missing directories (0755) when `create` is set. When
// it creates one and `first_created` (set to SIZE_MAX by the caller) is
// given, the index of the first one it created is stored there, even if a
// later step fails.
Result<UniqueFd> open_dir_beneath(int root, const std::vector<std::string>& components,
                                  std::size_t count, bool create, std::size_t* first_created = nullptr);

class TreeWriter {
 public:
  // `root` is borrowed and must stay open.
  TreeWriter(int root, TreeWriterOptions options);

  // Starts an entry. For a regular file with size > 0, write() must follow
  // with exactly `size` bytes; everything else is complete on return.
  Status begin(const TreeEntry& e);
  Status write(std::string_view data);
  // Applies the deferred directory modes and times (so a read-only directory
  // can still be filled first). Call once after the last entry. When
  // transactional, also deletes the entries the archive replaced; if it
  // fails before that, call abort().
  Status finish();
  // Transactional only: removes what this writer created (a file being
  // written, files, links and directories with everything in them) and
  // renames back what it replaced. Best effort; returns the first failure.
  Status abort();

  std::uint64_t entries() const { return entries_; }
  std::uint64_t bytes() const { return bytes_; }
  bool in_file() const { return file_.valid(); }

 private:
  struct PendingDir {
    std::vector<std::string> components;
    std::uint32_t mode, uid, gid;
    std::int64_t mtime_sec;
  };
  // Something created directly in a directory that existed before the
  // writer: undoing it removes it (a directory with all it holds) and renames
  // `backup`, the entry it replaced, back to its name.
  struct Created {
    std::vector<std::string> components;
    std::string backup;  // a name in the same directory; empty if nothing was replaced
  };
  Result<std::vector<std::string>> checked_components(std::string_view path) const;
  Result<UniqueFd> open_parent(const std::vector<std::string>& comps);
  Status remove_non_dir(int parent, const std::string& leaf);
  Status make_place(int parent, const std::vector<std::string>& comps);
  bool created_by_me(const std::vector<std::string>& comps, std::size_t count) const;
  Status note_created(const std::vector<std::string>& comps, std::size_t count, std::string backup = {});
  std::string temp_name();
  Status begin_dir(int parent, const std::vector<std::string>& comps, const TreeEntry& e);
  Status begin_file(UniqueFd parent, const std::vector<std::string>& comps, const TreeEntry& e);
  Status finish_file();
  Status apply_meta(int fd, const char* leaf, const TreeEntry& e, bool nofollow);
  Status undo(const Created& c);
  Status drop_backups();

  int root_;
  TreeWriterOptions opt_;
  std::vector<PendingDir> dirs_;
  UniqueFd file_;
  // Transactional: the directory of the file being written, its temporary
  // name and its components.
  UniqueFd file_dir_;
  std::string file_tmp_;
  std::vector<std::string> file_comps_;
  std::vector<Created> created_;
  std::unordered_set<std::string> created_paths_;  // the components of created_, joined
  std::uint64_t tmp_counter_ = 0;
  TreeEntry current_;
  std::uint64_t remaining_ = 0;
  std::uint64_t entries_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace moat::agent
