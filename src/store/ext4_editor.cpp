#include "store/ext4_editor.h"

#include <ext2fs/ext2fs.h>  // declares the error table too, inside its extern "C"
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>
#include <vector>

#include "util/positional_io.h"
#include "util/zero_block.h"

namespace moat::store {
namespace {

// Deeper trees than this cannot come from 4096-byte guest paths; the bound
// keeps the recursive removal's stack small on a damaged image.
constexpr int kMaxDepth = 2048;

// Host files are read in chunks of this size; a multiple of every ext4
// block size.
constexpr std::size_t kCopyChunk = 1 << 20;

void init_error_table() {
  static std::once_flag once;
  std::call_once(once, [] { initialize_ext2_error_table(); });
}

EntryType type_of(const ext2_inode& inode) {
  std::uint32_t fmt = inode.i_mode & LINUX_S_IFMT;
  if (fmt == LINUX_S_IFDIR) return EntryType::kDirectory;
  if (fmt == LINUX_S_IFREG) return EntryType::kRegular;
  if (fmt == LINUX_S_IFLNK) return EntryType::kSymlink;
  // Device numbers live in i_block[0] (old encoding) or i_block[1] (new).
  if (fmt == LINUX_S_IFCHR && inode.i_block[0] == 0 && inode.i_block[1] == 0) return EntryType::kWhiteout;
  return EntryType::kOther;
}

// ext4's 34-bit seconds: the low 32 bits in the base field, two epoch bits
// and the nanoseconds in the "extra" field.
void encode_time(std::int64_t sec, std::uint32_t nsec, __u32* base, __u32* extra) {
  *base = static_cast<__u32>(sec);
  std::int64_t epoch = (sec - static_cast<std::int32_t>(*base)) >> 32;
  *extra = (static_cast<__u32>(epoch) & EXT4_EPOCH_MASK) | (nsec << EXT4_EPOCH_BITS);
}


struct DirChild {
  std::string name;
  Ino ino;
};

int collect_child(ext2_ino_t, int entry, struct ext2_dir_entry* dirent, int, int, char*, void* priv) {
  if (entry == DIRENT_DOT_FILE || entry == DIRENT_DOT_DOT_FILE) return 0;
  auto* out = static_cast<std::vector<DirChild>*>(priv);
  out->push_back(DirChild{std::string(dirent->name, ext2fs_dirent_name_len(dirent)), dirent->inode});
  return 0;
}

}  // namespace

Error Ext4Editor::ext2_error(const std::string& what, long code) const {
  int err = EIO;
  if (code == EXT2_ET_BLOCK_ALLOC_FAIL || code == EXT2_ET_INODE_ALLOC_FAIL || code == EXT2_ET_DIR_NO_SPACE) {
    err = ENOSPC;
  } else if (code == EXT2_ET_DIR_EXISTS || code == EXT2_ET_FILE_EXISTS) {
    err = EEXIST;
  } else if (code > 0 && code < 4096) {
    err = static_cast<int>(code);  // libext2fs passes errno values through
  }
  return make_error(image_ + ": " + what + ": " + error_message(code), err);
}

Result<Ext4Editor> Ext4Editor::open(const std::string& image) {
  init_error_table();
  ext2_filsys fs = nullptr;
  errcode_t e = ext2fs_open(image.c_str(), EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
  if (e) return make_error("open ext4 image " + image + ": " + error_message(e), EIO);
  Ext4Editor editor(fs, image);
  if (ext2fs_has_feature_journal_needs_recovery(fs->super)) {
    return make_error(image + ": the filesystem's journal needs recovery (was it mounted?); not editing it", EBUSY);
  }
  if ((e = ext2fs_read_bitmaps(fs))) return editor.ext2_error("reading bitmaps", e);
  return editor;
}

Ext4Editor::Ext4Editor(Ext4Editor&& other) noexcept
    : fs_(std::exchange(other.fs_, nullptr)),
      image_(std::move(other.image_)),
      copy_buffer_(std::move(other.copy_buffer_)) {}

Ext4Editor::~Ext4Editor() {
  if (fs_) {
    ext2_filsys fs = fs_;
    ext2fs_close_free(&fs);
  }
}

Status Ext4Editor::close() {
  ext2_filsys fs = std::exchange(fs_, nullptr);
  if (!fs) return ok_status();
  errcode_t e = ext2fs_close_free(&fs);
  if (e) return make_error(image_ + ": writing the filesystem metadata: " + error_message(e), EIO);
  return ok_status();
}

Ino Ext4Editor::root() const { return EXT2_ROOT_INO; }

Result<std::optional<Ext4Entry>> Ext4Editor::lookup(Ino dir, const std::string& name) {
  ext2_ino_t ino = 0;
  errcode_t e = ext2fs_lookup(fs_, dir, name.data(), static_cast<int>(name.size()), nullptr, &ino);
  if (e == EXT2_ET_FILE_NOT_FOUND) return std::optional<Ext4Entry>();
  if (e) return ext2_error("looking up '" + name + "'", e);
  ext2_inode inode{};
  if ((e = ext2fs_read_inode(fs_, ino, &inode))) return ext2_error("reading inode of '" + name + "'", e);
  return std::optional<Ext4Entry>(Ext4Entry{ino, type_of(inode)});
}

Status Ext4Editor::link(Ino parent, const std::string& name, Ino ino, int file_type) {
  // libext2fs 1.47.0 does not grow a full directory by itself.
  for (int attempt = 0; attempt < 2; ++attempt) {
    errcode_t e = ext2fs_link(fs_, parent, name.c_str(), ino, file_type);
    if (e == 0) return ok_status();
    if (e != EXT2_ET_DIR_NO_SPACE || attempt == 1) return ext2_error("linking '" + name + "'", e);
    if ((e = ext2fs_expand_dir(fs_, parent))) return ext2_error("growing the directory of '" + name + "'", e);
  }
  return ok_status();
}

Status Ext4Editor::check_absent(Ino parent, const std::string& name) {
  MOAT_ASSIGN_OR_RETURN(auto existing, lookup(parent, name));
  if (existing) return make_error(image_ + ": '" + name + "' already exists", EEXIST);
  return ok_status();
}

Result<Ino> Ext4Editor::new_inode(Ino parent, const std::string& name, std::uint32_t full_mode, int file_type,
                                  bool known_absent) {
  if (!known_absent) MOAT_TRY(check_absent(parent, name));
  ext2_ino_t ino = 0;
  errcode_t e = ext2fs_new_inode(fs_, parent, static_cast<int>(full_mode), nullptr, &ino);
  if (e) return ext2_error("allocating an inode for '" + name + "'", e);
  MOAT_TRY(link(parent, name, ino, file_type));
  ext2fs_inode_alloc_stats2(fs_, ino, +1, 0);
  return static_cast<Ino>(ino);
}

Status Ext4Editor::write_attrs(Ino ino, const Ext4Attrs& a, bool keep_mode) {
  ext2_inode_large inode{};
  const int size = std::min<int>(EXT2_INODE_SIZE(fs_->super), sizeof(inode));
  errcode_t e = ext2fs_read_inode_full(fs_, ino, reinterpret_cast<ext2_inode*>(&inode), size);
  if (e) return ext2_error("reading inode " + std::to_string(ino), e);
  if (!keep_mode) inode.i_mode = static_cast<__u16>((inode.i_mode & LINUX_S_IFMT) | (a.mode & 07777));
  inode.i_uid = static_cast<__u16>(a.uid & 0xffff);
  inode.osd2.linux2.l_i_uid_high = static_cast<__u16>(a.uid >> 16);
  inode.i_gid = static_cast<__u16>(a.gid & 0xffff);
  inode.osd2.linux2.l_i_gid_high = static_cast<__u16>(a.gid >> 16);
  __u32 base = 0, extra = 0;
  encode_time(a.mtime, a.mtime_nsec, &base, &extra);
  inode.i_mtime = inode.i_atime = base;
  // i_extra_isize counts from i_extra_isize itself; the atime extra field ends 16 bytes in.
  bool has_extra = size > EXT2_GOOD_OLD_INODE_SIZE && inode.i_extra_isize >= 16;
  if (has_extra) inode.i_mtime_extra = inode.i_atime_extra = extra;
  e = ext2fs_write_inode_full(fs_, ino, reinterpret_cast<ext2_inode*>(&inode), size);
  if (e) return ext2_error("writing inode " + std::to_string(ino), e);
  return ok_status();
}

Status Ext4Editor::update_attrs(Ino ino, std::optional<std::uint32_t> mode, std::optional<std::uint32_t> uid,
                                std::optional<std::uint32_t> gid, std::optional<std::int64_t> mtime) {
  ext2_inode_large inode{};
  const int size = std::min<int>(EXT2_INODE_SIZE(fs_->super), sizeof(inode));
  errcode_t e = ext2fs_read_inode_full(fs_, ino, reinterpret_cast<ext2_inode*>(&inode), size);
  if (e) return ext2_error("reading inode " + std::to_string(ino), e);
  Ext4Attrs a;
  a.mode = mode.value_or(inode.i_mode & 07777);
  a.uid = uid.value_or(inode.i_uid | (static_cast<std::uint32_t>(inode.osd2.linux2.l_i_uid_high) << 16));
  a.gid = gid.value_or(inode.i_gid | (static_cast<std::uint32_t>(inode.osd2.linux2.l_i_gid_high) << 16));
  if (mtime) {
    a.mtime = *mtime;
  } else {
    // Keep the stored time, epoch bits and nanoseconds included.
    bool has_extra = size > EXT2_GOOD_OLD_INODE_SIZE && inode.i_extra_isize >= 16;
    std::uint32_t extra = has_extra ? inode.i_mtime_extra : 0;
    a.mtime = static_cast<std::int32_t>(inode.i_mtime) +
              (static_cast<std::int64_t>(extra & EXT4_EPOCH_MASK) << 32);
    a.mtime_nsec = extra >> EXT4_EPOCH_BITS;
  }
  return write_attrs(ino, a, false);
}

Result<Ino> Ext4Editor::make_directory(Ino parent, const std::string& name, const Ext4Attrs& attrs) {
  // ext2fs_mkdir fails with EXT2_ET_DIR_EXISTS by itself.
  ext2_ino_t ino = 0;
  errcode_t e = ext2fs_new_inode(fs_, parent, LINUX_S_IFDIR | 0755, nullptr, &ino);
  if (e) return ext2_error("allocating an inode for '" + name + "'", e);
  e = ext2fs_mkdir(fs_, parent, ino, name.c_str());
  if (e == EXT2_ET_DIR_NO_SPACE) {
    // ext2fs_mkdir released what it took; grow the parent and go again.
    if ((e = ext2fs_expand_dir(fs_, parent))) return ext2_error("growing the directory of '" + name + "'", e);
    e = ext2fs_mkdir(fs_, parent, ino, name.c_str());
  }
  if (e) return ext2_error("making directory '" + name + "'", e);
  MOAT_TRY(write_attrs(ino, attrs, false));
  return static_cast<Ino>(ino);
}

Status Ext4Editor::write_data(Ino ino, int fd, std::uint64_t size, const std::string& what) {
  ext2_file_t file = nullptr;
  errcode_t e = ext2fs_file_open(fs_, ino, EXT2_FILE_WRITE, &file);
  if (e) return ext2_error("opening inode for " + what, e);
  struct Closer {
    ext2_file_t f;
    ~Closer() {
      if (f) ext2fs_file_close(f);
    }
  } closer{file};

  const std::uint64_t bs = fs_->blocksize;
  // One buffer for every file of a copy: a fresh 1 MiB per small file was a
  // measurable share of copying thousands of them.
  std::vector<char>& buf = copy_buffer_;
  if (buf.size() < kCopyChunk) buf.resize(kCopyChunk);
  auto write_run = [&](std::uint64_t at, const char* p, std::size_t n) -> Status {
    errcode_t err = ext2fs_file_llseek(file, at, EXT2_SEEK_SET, nullptr);
    while (!err && n > 0) {
      unsigned int written = 0;
      err = ext2fs_file_write(file, p, static_cast<unsigned int>(n), &written);
      p += written;
      n -= written;
    }
    if (err) return ext2_error("writing " + what, err);
    return ok_status();
  };

  std::uint64_t pos = 0;
  bool can_seek = true;
  while (pos < size) {
    // Only the host file's data ranges are read (holes stay holes).
    std::uint64_t data = pos, end = size;
    if (can_seek) {
      off_t d = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
      if (d < 0 && errno == ENXIO) break;
      if (d < 0) {
        can_seek = false;  // a filesystem without SEEK_DATA: read everything
      } else {
        data = static_cast<std::uint64_t>(d) / bs * bs;
        off_t h = ::lseek(fd, d, SEEK_HOLE);
        if (h >= 0) end = std::min<std::uint64_t>(size, static_cast<std::uint64_t>(h));
      }
    }
    while (data < end) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kCopyChunk, end - data));
      MOAT_TRY(pread_fully(fd, buf.data(), n, static_cast<off_t>(data), "read " + what));
      // All-zero blocks become holes; runs of data blocks are written at once.
      std::size_t run_start = 0, i = 0;
      while (i < n) {
        std::size_t len = std::min<std::size_t>(bs, n - i);
        if (all_zero(buf.data() + i, len)) {
          if (i > run_start) MOAT_TRY(write_run(data + run_start, buf.data() + run_start, i - run_start));
          run_start = i + len;
        }
        i += len;
      }
      if (n > run_start) MOAT_TRY(write_run(data + run_start, buf.data() + run_start, n - run_start));
      data += n;
    }
    pos = end;
  }
  if ((e = ext2fs_file_set_size2(file, size))) return ext2_error("setting the size of " + what, e);
  closer.f = nullptr;
  if ((e = ext2fs_file_close(file))) return ext2_error("closing " + what, e);
  return ok_status();
}

namespace {

// A new regular file's inode: extent-mapped when the filesystem has extents.
Status init_regular_inode(ext2_filsys fs, Ino ino, std::uint32_t mode) {
  ext2_inode inode{};
  inode.i_mode = static_cast<__u16>(LINUX_S_IFREG | (mode & 07777));
  inode.i_links_count = 1;
  if (ext2fs_has_feature_extents(fs->super)) {
    ext2_extent_handle_t handle = nullptr;
    errcode_t e = ext2fs_extent_open2(fs, ino, &inode, &handle);  // writes the extent header into i_block
    if (e) return make_error(std::string("initialising extents: ") + error_message(e), EIO);
    ext2fs_extent_free(handle);
  }
  errcode_t e = ext2fs_write_new_inode(fs, ino, &inode);
  if (e) return make_error(std::string("writing a new inode: ") + error_message(e), EIO);
  return ok_status();
}

}  // namespace

Result<Ino> Ext4Editor::make_file_from_fd(Ino parent, const std::string& name, const Ext4Attrs& attrs, int fd,
                                          std::uint64_t size, const std::string& what, bool known_absent) {
  MOAT_ASSIGN_OR_RETURN(Ino ino, new_inode(parent, name, LINUX_S_IFREG | (attrs.mode & 07777), EXT2_FT_REG_FILE,
                                           known_absent));
  auto st = init_regular_inode(fs_, ino, attrs.mode);
  if (!st) return st.error().wrap(image_ + ": '" + name + "'");
  MOAT_TRY(write_data(ino, fd, size, what));
  MOAT_TRY(write_attrs(ino, attrs, false));
  return ino;
}

Result<Ino> Ext4Editor::make_file_from_bytes(Ino parent, const std::string& name, const Ext4Attrs& attrs,
                                             const std::string& bytes) {
  MOAT_ASSIGN_OR_RETURN(Ino ino, new_inode(parent, name, LINUX_S_IFREG | (attrs.mode & 07777), EXT2_FT_REG_FILE,
                                           false));
  auto st = init_regular_inode(fs_, ino, attrs.mode);
  if (!st) return st.error().wrap(image_ + ": '" + name + "'");
  if (!bytes.empty()) {
    ext2_file_t file = nullptr;
    errcode_t e = ext2fs_file_open(fs_, ino, EXT2_FILE_WRITE, &file);
    if (e) return ext2_error("opening '" + name + "'", e);
    const char* p = bytes.data();
    std::size_t left = bytes.size();
    while (!e && left > 0) {
      unsigned int written = 0;
      e = ext2fs_file_write(file, p, static_cast<unsigned int>(left), &written);
      p += written;
      left -= written;
    }
    errcode_t ce = ext2fs_file_close(file);
    if (e || ce) return ext2_error("writing '" + name + "'", e ? e : ce);
  }
  MOAT_TRY(write_attrs(ino, attrs, false));
  return ino;
}

Result<Ino> Ext4Editor::make_symlink(Ino parent, const std::string& name, const std::string& target,
                                     const Ext4Attrs& attrs) {
  // ext2fs_symlink fails with EXT2_ET_FILE_EXISTS by itself.
  if (target.empty() || target.find('\0') != std::string::npos || target.size() >= fs_->blocksize) {
    return make_error(image_ + ": symlink '" + name + "': target is empty, holds NUL or is too long", EINVAL);
  }
  ext2_ino_t ino = 0;
  errcode_t e = ext2fs_new_inode(fs_, parent, LINUX_S_IFLNK | 0777, nullptr, &ino);
  if (e) return ext2_error("allocating an inode for '" + name + "'", e);
  e = ext2fs_symlink(fs_, parent, ino, name.c_str(), target.c_str());
  if (e == EXT2_ET_DIR_NO_SPACE) {
    if ((e = ext2fs_expand_dir(fs_, parent))) return ext2_error("growing the directory of '" + name + "'", e);
    e = ext2fs_symlink(fs_, parent, ino, name.c_str(), target.c_str());
  }
  if (e) return ext2_error("making symlink '" + name + "'", e);
  MOAT_TRY(write_attrs(ino, attrs, true));
  return static_cast<Ino>(ino);
}

Result<Ino> Ext4Editor::make_whiteout(Ino parent, const std::string& name) {
  MOAT_ASSIGN_OR_RETURN(Ino ino, new_inode(parent, name, LINUX_S_IFCHR, EXT2_FT_CHRDEV, false));
  ext2_inode inode{};
  inode.i_mode = LINUX_S_IFCHR;  // mode 0, device 0:0 (all of i_block zero)
  inode.i_links_count = 1;
  errcode_t e = ext2fs_write_new_inode(fs_, ino, &inode);
  if (e) return ext2_error("writing whiteout '" + name + "'", e);
  return ino;
}

Status Ext4Editor::set_xattr(Ino ino, const std::string& name, const std::string& value) {
  ext2_xattr_handle* h = nullptr;
  errcode_t e = ext2fs_xattrs_open(fs_, ino, &h);
  if (e) return ext2_error("opening xattrs of inode " + std::to_string(ino), e);
  e = ext2fs_xattrs_read(h);
  // ext2fs_xattr_set writes the inode (and xattr block) itself.
  if (!e) e = ext2fs_xattr_set(h, name.c_str(), value.data(), value.size());
  errcode_t ce = ext2fs_xattrs_close(&h);
  if (e || ce) return ext2_error("setting xattr " + name, e ? e : ce);
  return ok_status();
}

Result<std::optional<std::string>> Ext4Editor::get_xattr(Ino ino, const std::string& name) {
  ext2_xattr_handle* h = nullptr;
  errcode_t e = ext2fs_xattrs_open(fs_, ino, &h);
  if (e) return ext2_error("opening xattrs of inode " + std::to_string(ino), e);
  void* value = nullptr;
  std::size_t len = 0;
  e = ext2fs_xattrs_read(h);
  if (!e) e = ext2fs_xattr_get(h, name.c_str(), &value, &len);
  std::optional<std::string> out;
  if (!e) out = std::string(static_cast<const char*>(value), len);
  if (value) ext2fs_free_mem(&value);
  ext2fs_xattrs_close(&h);
  if (e && e != EXT2_ET_EA_KEY_NOT_FOUND) return ext2_error("reading xattr " + name, e);
  return out;
}

Status Ext4Editor::release_inode(Ino ino) {
  ext2_inode_large inode{};
  const int size = std::min<int>(EXT2_INODE_SIZE(fs_->super), sizeof(inode));
  errcode_t e = ext2fs_read_inode_full(fs_, ino, reinterpret_cast<ext2_inode*>(&inode), size);
  if (e) return ext2_error("reading inode " + std::to_string(ino), e);
  bool is_dir = LINUX_S_ISDIR(inode.i_mode);
  if (!is_dir && inode.i_links_count > 1) {
    inode.i_links_count--;  // another name still holds it
  } else {
    inode.i_links_count = 0;
    inode.i_dtime = static_cast<__u32>(::time(nullptr));
    if ((e = ext2fs_free_ext_attr(fs_, ino, &inode))) return ext2_error("freeing xattrs", e);
    auto* small = reinterpret_cast<ext2_inode*>(&inode);
    if (ext2fs_inode_has_valid_blocks2(fs_, small)) {
      if ((e = ext2fs_punch(fs_, ino, small, nullptr, 0, ~0ULL))) return ext2_error("freeing blocks", e);
    }
  }
  e = ext2fs_write_inode_full(fs_, ino, reinterpret_cast<ext2_inode*>(&inode), size);
  if (e) return ext2_error("writing inode " + std::to_string(ino), e);
  if (inode.i_links_count == 0) ext2fs_inode_alloc_stats2(fs_, ino, -1, is_dir ? 1 : 0);
  return ok_status();
}

Status Ext4Editor::remove_entry(Ino parent, const std::string& name, const Ext4Entry& entry, int depth) {
  if (depth > kMaxDepth) return make_error(image_ + ": directory tree too deep to remove", ELOOP);
  if (entry.type == EntryType::kDirectory) {
    std::vector<DirChild> children;
    errcode_t e = ext2fs_dir_iterate2(fs_, entry.ino, 0, nullptr, collect_child, &children);
    if (e) return ext2_error("listing '" + name + "'", e);
    for (const auto& child : children) {
      ext2_inode inode{};
      if ((e = ext2fs_read_inode(fs_, child.ino, &inode))) return ext2_error("reading '" + child.name + "'", e);
      MOAT_TRY(remove_entry(entry.ino, child.name, Ext4Entry{child.ino, type_of(inode)}, depth + 1));
    }
  }
  errcode_t e = ext2fs_unlink(fs_, parent, name.c_str(), entry.ino, 0);
  if (e) return ext2_error("unlinking '" + name + "'", e);
  if (entry.type == EntryType::kDirectory) {
    // The child's ".." no longer counts as a link to the parent.
    ext2_inode p{};
    if ((e = ext2fs_read_inode(fs_, parent, &p))) return ext2_error("reading a parent inode", e);
    if (p.i_links_count > 2) p.i_links_count--;
    if ((e = ext2fs_write_inode(fs_, parent, &p))) return ext2_error("writing a parent inode", e);
  }
  return release_inode(entry.ino);
}

Status Ext4Editor::remove(Ino parent, const std::string& name) {
  MOAT_ASSIGN_OR_RETURN(auto entry, lookup(parent, name));
  if (!entry) return make_error(image_ + ": '" + name + "' does not exist", ENOENT);
  return remove_entry(parent, name, *entry, 0);
}

}  // namespace moat::store
