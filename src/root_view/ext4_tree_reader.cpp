#include "root_view/ext4_tree_reader.h"

#include <ext2fs/ext2fs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace moat::root_view {
namespace {

std::int64_t seconds_of(std::uint32_t lo, std::uint32_t extra) {
  // The low two bits of the extra field extend the epoch past 2038.
  return static_cast<std::int64_t>(static_cast<std::int32_t>(lo)) + (static_cast<std::int64_t>(extra & 3) << 32);
}

struct ListState {
  std::vector<std::pair<std::string, Ino>>* out;
  bool too_many = false;
};

int collect_entry(ext2_dir_entry* dirent, int, int, char*, void* priv) {
  auto* st = static_cast<ListState*>(priv);
  int len = ext2fs_dirent_name_len(dirent);
  std::string name(dirent->name, static_cast<std::size_t>(len));
  if (name == "." || name == ".." || dirent->inode == 0) return 0;
  if (st->out->size() >= kMaxDirEntries) {
    st->too_many = true;
    return DIRENT_ABORT;
  }
  st->out->emplace_back(std::move(name), dirent->inode);
  return 0;
}

struct XattrState {
  Xattrs* out;
  bool too_many = false;
};

int collect_xattr(char* name, char* value, size_t len, void* priv) {
  auto* st = static_cast<XattrState*>(priv);
  if (st->out->size() >= kMaxXattrs || len > kMaxXattrValue) {
    st->too_many = true;
    return XATTR_ABORT;
  }
  st->out->emplace_back(name, std::string(value, len));
  return 0;
}

}  // namespace

Result<Ext4TreeReader> Ext4TreeReader::open(const std::string& image) {
  ext2_filsys fs = nullptr;
  errcode_t e = ext2fs_open(image.c_str(), EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
  if (e) return make_error("open ext4 image " + image + ": " + error_message(e), EINVAL);
  if (ext2fs_has_feature_journal_needs_recovery(fs->super)) {
    ext2fs_close_free(&fs);
    return make_error("the disk " + image + " was not unmounted cleanly (its journal needs replaying): start the "
                      "sandbox and stop it again, or read it while it runs",
                      EUCLEAN);
  }
  return Ext4TreeReader(fs);
}

Ext4TreeReader::Ext4TreeReader(Ext4TreeReader&& other) noexcept : fs_(other.fs_) { other.fs_ = nullptr; }

Ext4TreeReader::~Ext4TreeReader() {
  if (fs_) {
    ext2_filsys fs = fs_;
    ext2fs_close_free(&fs);
  }
}

Error Ext4TreeReader::ext2_error(const std::string& what, long code) const {
  return make_error(what + ": " + error_message(code), EIO);
}

Ino Ext4TreeReader::root() const { return EXT2_ROOT_INO; }

Result<Ext4Inode> Ext4TreeReader::inode(Ino ino) const {
  if (ino == 0 || ino > fs_->super->s_inodes_count) return make_error("inode " + std::to_string(ino) + " is out of range", EIO);
  ext2_inode_large raw;
  std::memset(&raw, 0, sizeof raw);
  errcode_t e = ext2fs_read_inode_full(fs_, ino, reinterpret_cast<ext2_inode*>(&raw), sizeof raw);
  if (e) return ext2_error("read inode " + std::to_string(ino), e);
  Ext4Inode n;
  n.ino = ino;
  n.mode = raw.i_mode;
  n.uid = inode_uid(raw);
  n.gid = inode_gid(raw);
  n.nlink = raw.i_links_count;
  n.size = EXT2_I_SIZE(&raw);
  bool extra = raw.i_extra_isize >= 8;  // i_ctime_extra and i_mtime_extra present
  n.mtime_sec = seconds_of(raw.i_mtime, extra ? raw.i_mtime_extra : 0);
  n.mtime_nsec = extra ? (raw.i_mtime_extra >> 2) : 0;
  if (n.mtime_nsec >= 1000000000u) n.mtime_nsec = 0;
  std::uint32_t t = n.type();
  if (t == 0020000 || t == 0060000) {
    if (raw.i_block[0]) {  // the old encoding
      n.rdev_major = (raw.i_block[0] >> 8) & 255;
      n.rdev_minor = raw.i_block[0] & 255;
    } else {
      std::uint32_t d = raw.i_block[1];
      n.rdev_major = (d & 0xfff00) >> 8;
      n.rdev_minor = (d & 0xff) | ((d >> 12) & 0xfff00);
    }
  }
  return n;
}

Result<std::optional<Ino>> Ext4TreeReader::lookup(Ino dir, const std::string& name) const {
  if (name.empty() || name.size() > EXT2_NAME_LEN) return std::optional<Ino>{};
  ext2_ino_t found = 0;
  errcode_t e = ext2fs_lookup(fs_, dir, name.c_str(), static_cast<int>(name.size()), nullptr, &found);
  if (e == EXT2_ET_FILE_NOT_FOUND) return std::optional<Ino>{};
  if (e) return ext2_error("look up \"" + name + "\"", e);
  return std::optional<Ino>(found);
}

Result<std::vector<std::pair<std::string, Ino>>> Ext4TreeReader::list(Ino dir) const {
  std::vector<std::pair<std::string, Ino>> out;
  ListState st{&out};
  errcode_t e = ext2fs_dir_iterate(fs_, dir, 0, nullptr, collect_entry, &st);
  if (e) return ext2_error("read directory inode " + std::to_string(dir), e);
  if (st.too_many) return make_error("directory inode " + std::to_string(dir) + " has too many entries", EFBIG);
  std::sort(out.begin(), out.end());
  // A damaged directory may name an entry twice; one name, one entry.
  out.erase(std::unique(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first == b.first; }),
            out.end());
  return out;
}

Result<std::size_t> Ext4TreeReader::read(Ino ino, std::uint64_t offset, void* buf, std::size_t len) const {
  ext2_file_t file = nullptr;
  errcode_t e = ext2fs_file_open(fs_, ino, 0, &file);
  if (e) return ext2_error("open inode " + std::to_string(ino), e);
  std::size_t done = 0;
  e = ext2fs_file_llseek(file, offset, EXT2_SEEK_SET, nullptr);
  while (!e && done < len) {
    unsigned int got = 0;
    unsigned int want = static_cast<unsigned int>(std::min<std::size_t>(len - done, 1u << 20));
    e = ext2fs_file_read(file, static_cast<char*>(buf) + done, want, &got);
    if (e || got == 0) break;
    done += got;
  }
  errcode_t ce = ext2fs_file_close(file);
  if (e) return ext2_error("read inode " + std::to_string(ino), e);
  if (ce) return ext2_error("close inode " + std::to_string(ino), ce);
  return done;
}

Result<std::string> Ext4TreeReader::readlink(const Ext4Inode& n) const {
  if (n.size == 0 || n.size > kMaxSymlinkTarget)
    return make_error("symlink inode " + std::to_string(n.ino) + " has a bad length", EIO);
  ext2_inode_large raw;
  std::memset(&raw, 0, sizeof raw);
  errcode_t e = ext2fs_read_inode_full(fs_, n.ino, reinterpret_cast<ext2_inode*>(&raw), sizeof raw);
  if (e) return ext2_error("read inode " + std::to_string(n.ino), e);
  std::string target(static_cast<std::size_t>(n.size), '\0');
  if (raw.i_flags & EXT4_INLINE_DATA_FL) {
    std::size_t got = target.size();
    e = ext2fs_inline_data_get(fs_, n.ino, reinterpret_cast<ext2_inode*>(&raw), target.data(), &got);
    if (e) return ext2_error("read symlink inode " + std::to_string(n.ino), e);
    target.resize(std::min(got, target.size()));
    return target;
  }
  if (ext2fs_is_fast_symlink(reinterpret_cast<ext2_inode*>(&raw))) {
    if (target.size() > sizeof raw.i_block) return make_error("symlink inode " + std::to_string(n.ino) + " is damaged", EIO);
    std::memcpy(target.data(), raw.i_block, target.size());
    return target;
  }
  MOAT_ASSIGN_OR_RETURN(auto got, read(n.ino, 0, target.data(), target.size()));
  if (got != target.size()) return make_error("symlink inode " + std::to_string(n.ino) + " is short", EIO);
  return target;
}

Result<Xattrs> Ext4TreeReader::xattrs(Ino ino) const {
  Xattrs out;
  ext2_xattr_handle* h = nullptr;
  errcode_t e = ext2fs_xattrs_open(fs_, ino, &h);
  if (e) return ext2_error("xattrs of inode " + std::to_string(ino), e);
  e = ext2fs_xattrs_read(h);
  XattrState st{&out};
  if (!e) e = ext2fs_xattrs_iterate(h, collect_xattr, &st);
  ext2fs_xattrs_close(&h);
  if (e) return ext2_error("xattrs of inode " + std::to_string(ino), e);
  if (st.too_many) return make_error("inode " + std::to_string(ino) + " has too many or too large xattrs", EFBIG);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace moat::root_view
