// Edits an unmounted ext4 image in place through libext2fs: create
// directories, files, symlinks and overlayfs whiteouts, set owners, modes,
// times and xattrs, remove trees. No mount, no root, no kernel involvement.
//
// libext2fs rather than scripting `debugfs -w`: debugfs reads commands from a
// line-oriented text file, so names holding newlines or quotes cannot be
// expressed safely, a failed command does not change its exit status (errors
// would have to be scraped from its output), and `write` cannot set the owner
// or mode in the same step. The library takes names as byte strings and
// reports every failure as an error code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

// libext2fs's handle type, kept out of this header so its C macros do not
// leak into every includer.
struct struct_ext2_filsys;

namespace moat::store {

using Ino = std::uint32_t;

enum class EntryType { kDirectory, kRegular, kSymlink, kWhiteout, kOther };

struct Ext4Entry {
  Ino ino = 0;
  EntryType type = EntryType::kOther;
};

// What a created or updated inode gets. `mode` holds permission bits only
// (07777); the type comes from what is created.
struct Ext4Attrs {
  std::uint32_t mode = 0;
  std::uint32_t uid = 0, gid = 0;
  std::int64_t mtime = 0;  // seconds; also used as atime
  std::uint32_t mtime_nsec = 0;
};

class Ext4Editor {
 public:
  // Opens `image` read-write. Refuses a filesystem whose journal needs
  // recovery (it was in use and not cleanly unmounted): writing around an
  // unreplayed journal would corrupt it.
  static Result<Ext4Editor> open(const std::string& image);

  Ext4Editor(Ext4Editor&& other) noexcept;
  Ext4Editor& operator=(Ext4Editor&&) = delete;
  Ext4Editor(const Ext4Editor&) = delete;
  Ext4Editor& operator=(const Ext4Editor&) = delete;
  // Writes out what is dirty if close() was not called; errors are lost then.
  ~Ext4Editor();

  // Writes the superblock, group descriptors and bitmaps and closes.
  Status close();

  Ino root() const;
  const std::string& image() const { return image_; }

  Result<std::optional<Ext4Entry>> lookup(Ino dir, const std::string& name);

  // Each creator fails if `name` already exists in `dir`. A file's creator
  // skips that check when the caller passes `known_absent` (it made `dir`
  // itself and knows what is in it): the check is a linear scan of the
  // directory, and copying a large tree would otherwise pay it per entry.
  Result<Ino> make_directory(Ino parent, const std::string& name, const Ext4Attrs& attrs);
  // Contents from an open host file of `size` bytes: only its data ranges
  // are read and all-zero blocks become holes, so sparse files stay sparse.
  Result<Ino> make_file_from_fd(Ino parent, const std::string& name, const Ext4Attrs& attrs, int fd,
                                std::uint64_t size, const std::string& what, bool known_absent = false);
  Result<Ino> make_file_from_bytes(Ino parent, const std::string& name, const Ext4Attrs& attrs,
                                   const std::string& bytes);
  // The mode of a symlink is always 0777; attrs.mode is ignored.
  Result<Ino> make_symlink(Ino parent, const std::string& name, const std::string& target,
                           const Ext4Attrs& attrs);
  // An overlayfs whiteout: a character device 0:0 with mode 0, owned by 0:0.
  Result<Ino> make_whiteout(Ino parent, const std::string& name);

  // Sets the permission bits, owner and times of an existing inode (the
  // fields given; the rest are kept).
  Status update_attrs(Ino ino, std::optional<std::uint32_t> mode, std::optional<std::uint32_t> uid,
                      std::optional<std::uint32_t> gid, std::optional<std::int64_t> mtime);

  Status set_xattr(Ino ino, const std::string& name, const std::string& value);
  // std::nullopt when the inode has no such xattr.
  Result<std::optional<std::string>> get_xattr(Ino ino, const std::string& name);

  // Removes `name` from `parent`, with everything below it if it is a
  // directory, and frees the inodes and blocks no other link holds.
  Status remove(Ino parent, const std::string& name);

 private:
  Ext4Editor(struct_ext2_filsys* fs, std::string image) : fs_(fs), image_(std::move(image)) {}

  Result<Ino> new_inode(Ino parent, const std::string& name, std::uint32_t full_mode, int file_type,
                        bool known_absent);
  Status check_absent(Ino parent, const std::string& name);
  Status link(Ino parent, const std::string& name, Ino ino, int file_type);
  Status write_attrs(Ino ino, const Ext4Attrs& attrs, bool keep_mode);
  Status remove_entry(Ino parent, const std::string& name, const Ext4Entry& entry, int depth);
  Status release_inode(Ino ino);
  Status write_data(Ino ino, int fd, std::uint64_t size, const std::string& what);
  Error ext2_error(const std::string& what, long code) const;

  struct_ext2_filsys* fs_ = nullptr;
  std::string image_;
  std::vector<char> copy_buffer_;
};

}  // namespace moat::store
