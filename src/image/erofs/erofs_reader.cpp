#include "image/erofs/erofs_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "image/erofs/erofs_format.h"
#include "util/path_names.h"

namespace moat::image {
namespace {

namespace fmt = erofs;

// feature_incompat bits (linux/fs/erofs/erofs_fs.h).
constexpr std::uint32_t kIncompatZeroPadding = 0x1;   // compressed data only
constexpr std::uint32_t kIncompatComprCfgs = 0x2;     // compressed data only
constexpr std::uint32_t kIncompatChunkedFile = 0x4;   // per inode: unsupported
constexpr std::uint32_t kIncompatZtailpacking = 0x10; // compressed data only
constexpr std::uint32_t kIncompatFragments = 0x20;    // compressed data only
// Bits that change nothing for the inodes this reader accepts; any other bit
// (extra devices, long xattr prefixes, future ones) rejects the image.
constexpr std::uint32_t kIncompatUnderstood = kIncompatZeroPadding | kIncompatComprCfgs |
                                              kIncompatChunkedFile | kIncompatZtailpacking |
                                              kIncompatFragments;

constexpr std::uint16_t kLayoutFlatPlain = 0;
constexpr std::uint16_t kLayoutCompressedFull = 1;
constexpr std::uint16_t kLayoutFlatInline = 2;
constexpr std::uint16_t kLayoutCompressedCompact = 3;
constexpr std::uint16_t kLayoutChunkBased = 4;

std::uint16_t le16(const unsigned char* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t le32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint64_t le64(const unsigned char* p) {
  return static_cast<std::uint64_t>(le32(p)) | (static_cast<std::uint64_t>(le32(p + 4)) << 32);
}

Error corrupt(const std::string& what) { return make_error("corrupt EROFS image: " + what, EIO); }
Error unsupported(const std::string& what) {
  return make_error("unsupported EROFS image: " + what, ENOTSUP);
}

// a + b <= limit, without overflow.
bool fits(std::uint64_t a, std::uint64_t b, std::uint64_t limit) {
  return a <= limit && b <= limit - a;
}

const char* xattr_prefix(std::uint8_t index) {
  switch (index) {
    case 1: return "user.";
    case 2: return "system.posix_acl_access";
    case 3: return "system.posix_acl_default";
    case 4: return "trusted.";
    case 5: return "lustre.";
    case 6: return "security.";
    default: return nullptr;
  }
}

bool valid_file_type(std::uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR:
    case S_IFBLK: case S_IFIFO: case S_IFSOCK: return true;
    default: return false;
  }
}

// The parsed entries of one directory block; names point into the block.
struct BlockEntry {
  std::string_view name;
  ErofsNid nid;
  std::uint8_t type;
};

Status parse_dir_block(const unsigned char* block, std::size_t len, std::vector<BlockEntry>& out) {
  out.clear();
  if (len < fmt::kDirentSize) return corrupt("directory block too short");
  std::uint16_t first = le16(block + 8);
  if (first < fmt::kDirentSize || first % fmt::kDirentSize != 0 || first >= len) {
    return corrupt("bad first name offset in directory block");
  }
  std::size_t count = first / fmt::kDirentSize;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const unsigned char* d = block + i * fmt::kDirentSize;
    std::size_t start = le16(d + 8);
    std::size_t end = i + 1 < count ? le16(d + fmt::kDirentSize + 8) : len;
    if (start < first || start >= end || end > len) return corrupt("bad name offset in directory");
    std::size_t name_len = end - start;
    // The last name of a block runs to the first NUL (or the block's end).
    if (i + 1 == count) {
      const void* nul = std::memchr(block + start, 0, name_len);
      if (nul) name_len = static_cast<std::size_t>(static_cast<const unsigned char*>(nul) - (block + start));
    }
    if (name_len == 0 || name_len > 255) return corrupt("bad name length in directory");
    out.push_back({std::string_view(reinterpret_cast<const char*>(block + start), name_len),
                   le64(d), d[10]});
  }
  return ok_status();
}

}  // namespace

Result<ErofsReader> ErofsReader::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open " + path);
  auto reader = from_fd(std::move(fd));
  if (!reader.ok()) return reader.error().wrap(path);
  return reader;
}

Result<ErofsReader> ErofsReader::from_fd(UniqueFd fd) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("fstat");
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) return make_error("not a regular file", EINVAL);
  std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    off_t end = ::lseek(fd.get(), 0, SEEK_END);
    if (end < 0) return errno_error("lseek");
    size = static_cast<std::uint64_t>(end);
  }
  ErofsReader reader(std::move(fd), size);
  MOAT_TRY(reader.load_superblock());
  return reader;
}

Status ErofsReader::pread_exact(std::uint64_t offset, void* buf, std::size_t len) const {
  if (!fits(offset, len, file_size_)) return corrupt("read past the end of the image");
  auto* p = static_cast<unsigned char*>(buf);
  while (len > 0) {
    ssize_t n = ::pread(fd_.get(), p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read image");
    }
    if (n == 0) return make_error("image shrank while in use", EIO);
    p += n;
    offset += static_cast<std::uint64_t>(n);
    len -= static_cast<std::size_t>(n);
  }
  return ok_status();
}

Status ErofsReader::load_superblock() {
  unsigned char s[fmt::kSuperblockSize];
  if (file_size_ < fmt::kSuperblockOffset + fmt::kSuperblockSize) return corrupt("too small");
  MOAT_TRY(pread_exact(fmt::kSuperblockOffset, s, sizeof s));
  if (le32(s + fmt::sb::kMagic) != fmt::kMagic) return corrupt("bad magic");
  unsigned bits = s[fmt::sb::kBlkSzBits];
  if (bits < 9 || bits > 16) return corrupt("bad block size");
  sb_.block_size = 1u << bits;
  sb_.feature_compat = le32(s + fmt::sb::kFeatureCompat);
  sb_.feature_incompat = le32(s + 80);
  if (sb_.feature_incompat & ~kIncompatUnderstood) {
    return unsupported("feature_incompat " + std::to_string(sb_.feature_incompat));
  }
  sb_.root_nid = le16(s + fmt::sb::kRootNid);
  sb_.inodes = le64(s + fmt::sb::kInos);
  sb_.build_time = le64(s + fmt::sb::kBuildTime);
  sb_.build_time_nsec = le32(s + fmt::sb::kBuildTimeNsec);
  sb_.blocks = le32(s + fmt::sb::kBlocks);
  meta_base_ = static_cast<std::uint64_t>(le32(s + fmt::sb::kMetaBlkAddr)) << bits;
  xattr_base_ = static_cast<std::uint64_t>(le32(s + fmt::sb::kXattrBlkAddr)) << bits;
  if (meta_base_ >= file_size_) return corrupt("metadata area outside the image");
  MOAT_ASSIGN_OR_RETURN(ErofsInode root, inode(sb_.root_nid));
  if (!root.is_dir()) return corrupt("root is not a directory");
  return ok_status();
}

Result<ErofsInode> ErofsReader::inode(ErofsNid nid) const {
  if (nid > (file_size_ - meta_base_) / fmt::kInodeSlotSize) return corrupt("nid out of range");
  std::uint64_t pos = meta_base_ + nid * fmt::kInodeSlotSize;
  unsigned char raw[fmt::kExtendedInodeSize] = {};
  std::size_t avail = static_cast<std::size_t>(
      std::min<std::uint64_t>(sizeof raw, file_size_ - pos));
  if (avail < fmt::kCompactInodeSize) return corrupt("inode past the end");
  MOAT_TRY(pread_exact(pos, raw, avail));

  std::uint16_t format = le16(raw);
  if (format & ~0xFu) return corrupt("bad inode format " + std::to_string(format));
  bool extended = format & fmt::kInodeLayoutExtended;
  std::uint16_t layout = (format >> 1) & 0x7;
  std::size_t isize = extended ? fmt::kExtendedInodeSize : fmt::kCompactInodeSize;
  if (avail < isize) return corrupt("inode past the end");

  ErofsInode ino;
  ino.nid = nid;
  ino.mode = le16(raw + 4);
  std::uint32_t raw_u = le32(raw + 16);
  if (extended) {
    ino.size = le64(raw + 8);
    ino.uid = le32(raw + 24);
    ino.gid = le32(raw + 28);
    ino.mtime_sec = static_cast<std::int64_t>(le64(raw + 32));
    ino.mtime_nsec = le32(raw + 40);
    ino.nlink = le32(raw + 44);
  } else {
    ino.nlink = le16(raw + 6);
    ino.size = le32(raw + 8);
    ino.uid = le16(raw + 24);
    ino.gid = le16(raw + 26);
    ino.mtime_sec = static_cast<std::int64_t>(sb_.build_time);
    ino.mtime_nsec = sb_.build_time_nsec;
  }
  if (!valid_file_type(ino.mode)) return corrupt("bad file type");
  if (ino.mtime_nsec >= 1000000000u) return corrupt("bad mtime nanoseconds");

  std::uint16_t icount = le16(raw + 2);
  ino.xattr_size = icount ? static_cast<std::uint32_t>(fmt::kXattrIbodyHeaderSize + (icount - 1u) * 4u) : 0;
  ino.xattr_offset = pos + isize;
  if (!fits(ino.xattr_offset, ino.xattr_size, file_size_)) return corrupt("xattrs past the end");
  ino.inline_offset = ino.xattr_offset + ino.xattr_size;
  ino.data_layout = static_cast<std::uint8_t>(layout);

  std::uint32_t type = ino.type();
  if (type == S_IFCHR || type == S_IFBLK) {
    ino.rdev = raw_u;
    return ino;
  }
  if (type == S_IFIFO || type == S_IFSOCK) return ino;

  // Regular files, directories and symlinks carry data.
  if (layout == kLayoutCompressedFull || layout == kLayoutCompressedCompact) {
    return unsupported("compressed inode " + std::to_string(nid));
  }
  if (layout == kLayoutChunkBased) return unsupported("chunk-based inode " + std::to_string(nid));
  if (layout != kLayoutFlatPlain && layout != kLayoutFlatInline) {
    return corrupt("bad data layout " + std::to_string(layout));
  }
  const std::uint64_t bs = sb_.block_size;
  ino.data_offset = static_cast<std::uint64_t>(raw_u) * bs;
  if (layout == kLayoutFlatPlain) {
    if (ino.size > 0 && !fits(ino.data_offset, ino.size, file_size_)) return corrupt("data past the end");
    return ino;
  }
  std::uint64_t full = ino.size / bs;
  std::uint64_t tail = ino.size % bs;
  if (full > 0 && !fits(ino.data_offset, full * bs, file_size_)) return corrupt("data past the end");
  if (!fits(ino.inline_offset, tail, file_size_)) return corrupt("inline data past the end");
  // The kernel maps the inline tail from the inode's block: it may not cross
  // into the next one.
  if (tail > 0 && ino.inline_offset % bs + tail > bs) return corrupt("inline data crosses a block");
  return ino;
}

Result<std::size_t> ErofsReader::read(ErofsNid nid, std::uint64_t offset, void* buf,
                                      std::size_t len) const {
  MOAT_ASSIGN_OR_RETURN(ErofsInode ino, inode(nid));
  return read(ino, offset, buf, len);
}

Result<std::size_t> ErofsReader::read(const ErofsInode& ino, std::uint64_t offset, void* buf,
                                      std::size_t len) const {
  std::uint32_t type = ino.type();
  if (type != S_IFREG && type != S_IFDIR && type != S_IFLNK) return make_error("no data", EINVAL);
  if (offset >= ino.size) return std::size_t{0};
  std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(len, ino.size - offset));
  auto* out = static_cast<unsigned char*>(buf);
  std::size_t done = 0;
  // Full blocks are contiguous from data_offset; an inline tail follows the
  // inode. So at most two reads.
  std::uint64_t block_bytes = ino.data_layout == kLayoutFlatInline
                                  ? ino.size / sb_.block_size * sb_.block_size
                                  : ino.size;
  if (offset < block_bytes) {
    std::size_t part = static_cast<std::size_t>(std::min<std::uint64_t>(n, block_bytes - offset));
    MOAT_TRY(pread_exact(ino.data_offset + offset, out, part));
    done = part;
  }
  if (done < n) {
    MOAT_TRY(pread_exact(ino.inline_offset + (offset + done - block_bytes), out + done, n - done));
    done = n;
  }
  return done;
}

Result<std::string> ErofsReader::readlink(ErofsNid nid) const {
  MOAT_ASSIGN_OR_RETURN(ErofsInode ino, inode(nid));
  return readlink(ino);
}

Result<std::string> ErofsReader::readlink(const ErofsInode& ino) const {
  if (!ino.is_symlink()) return make_error("not a symlink", EINVAL);
  if (ino.size == 0 || ino.size > kErofsMaxSymlink) return corrupt("bad symlink length");
  std::string target(static_cast<std::size_t>(ino.size), '\0');
  MOAT_ASSIGN_OR_RETURN(std::size_t n, read(ino, 0, target.data(), target.size()));
  target.resize(n);
  return target;
}

Result<std::size_t> ErofsReader::read_dir_block(const ErofsInode& dir, std::uint64_t index,
                                                std::vector<unsigned char>& block) const {
  std::uint64_t start = index * sb_.block_size;
  std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(sb_.block_size, dir.size - start));
  block.resize(sb_.block_size);
  MOAT_ASSIGN_OR_RETURN(std::size_t n, read(dir, start, block.data(), len));
  if (n != len) return corrupt("short directory block");
  return len;
}

Result<std::optional<ErofsNid>> ErofsReader::lookup(ErofsNid dir, std::string_view name) const {
  MOAT_ASSIGN_OR_RETURN(ErofsInode ino, inode(dir));
  return lookup(ino, name);
}

Result<std::optional<ErofsNid>> ErofsReader::lookup(const ErofsInode& dir,
                                                    std::string_view name) const {
  if (!dir.is_dir()) return make_error("not a directory", ENOTDIR);
  if (name.empty() || name.size() > 255) return std::optional<ErofsNid>{};
  std::uint64_t nblocks = (dir.size + sb_.block_size - 1) / sb_.block_size;
  std::vector<unsigned char> block;
  std::vector<BlockEntry> entries;
  // Find the last block whose first name is <= name.
  std::uint64_t lo = 0, hi = nblocks;
  std::optional<std::uint64_t> candidate;
  while (lo < hi) {
    std::uint64_t mid = lo + (hi - lo) / 2;
    MOAT_ASSIGN_OR_RETURN(std::size_t len, read_dir_block(dir, mid, block));
    MOAT_TRY(parse_dir_block(block.data(), len, entries));
    int cmp = name.compare(entries.front().name);
    if (cmp == 0) return std::optional<ErofsNid>(entries.front().nid);
    if (cmp < 0) {
      hi = mid;
    } else {
      candidate = mid;
      lo = mid + 1;
    }
  }
  if (!candidate) return std::optional<ErofsNid>{};
  MOAT_ASSIGN_OR_RETURN(std::size_t len, read_dir_block(dir, *candidate, block));
  MOAT_TRY(parse_dir_block(block.data(), len, entries));
  auto it = std::lower_bound(entries.begin(), entries.end(), name,
                             [](const BlockEntry& e, std::string_view n) { return e.name < n; });
  if (it != entries.end() && it->name == name) return std::optional<ErofsNid>(it->nid);
  return std::optional<ErofsNid>{};
}

Result<ErofsNid> ErofsReader::lookup_path(std::string_view path) const {
  ErofsNid cur = sb_.root_nid;
  std::size_t components = 0;
  MOAT_TRY(for_each_path_name(path, [&](std::string_view part) -> Status {
    if (++components > kErofsMaxPathComponents) return make_error("path too long", ENAMETOOLONG);
    MOAT_ASSIGN_OR_RETURN(ErofsInode ino, inode(cur));
    if (!ino.is_dir()) return make_error("not a directory", ENOTDIR);
    MOAT_ASSIGN_OR_RETURN(std::optional<ErofsNid> next, lookup(ino, part));
    if (!next) return make_error(std::string(part) + ": no such file or directory", ENOENT);
    cur = *next;
    return ok_status();
  }));
  return cur;
}

Status ErofsReader::read_dir(ErofsNid dir, const DirCallback& fn, std::uint64_t offset) const {
  MOAT_ASSIGN_OR_RETURN(ErofsInode ino, inode(dir));
  return read_dir(ino, fn, offset);
}

Status ErofsReader::read_dir(const ErofsInode& dir, const DirCallback& fn,
                             std::uint64_t offset) const {
  if (!dir.is_dir()) return make_error("not a directory", ENOTDIR);
  const std::uint64_t bs = sb_.block_size;
  std::uint64_t nblocks = (dir.size + bs - 1) / bs;
  std::vector<unsigned char> block;
  std::vector<BlockEntry> entries;
  for (std::uint64_t b = offset / bs; b < nblocks; ++b) {
    MOAT_ASSIGN_OR_RETURN(std::size_t len, read_dir_block(dir, b, block));
    MOAT_TRY(parse_dir_block(block.data(), len, entries));
    std::size_t first = b == offset / bs ? static_cast<std::size_t>(offset % bs) : 0;
    for (std::size_t i = first; i < entries.size(); ++i) {
      std::uint64_t next = i + 1 < entries.size() ? b * bs + i + 1 : (b + 1) * bs;
      if (!fn(ErofsDirent{entries[i].name, entries[i].nid, entries[i].type, next})) return ok_status();
    }
  }
  return ok_status();
}

Result<ErofsReader::Xattrs> ErofsReader::xattrs(ErofsNid nid) const {
  MOAT_ASSIGN_OR_RETURN(ErofsInode ino, inode(nid));
  return xattrs(ino);
}

Status ErofsReader::decode_xattr_entries(const unsigned char* p, std::size_t len, bool one,
                                         Xattrs& out) const {
  std::size_t pos = 0;
  while (pos < len) {
    if (len - pos < fmt::kXattrEntryHeaderSize) return corrupt("truncated xattr entry");
    std::size_t name_len = p[pos];
    std::uint8_t index = p[pos + 1];
    std::size_t value_size = le16(p + pos + 2);
    std::size_t body = fmt::kXattrEntryHeaderSize + name_len + value_size;
    if (body > len - pos) return corrupt("xattr entry past its area");
    // Names with an index the kernel does not know are skipped, as it does.
    if (const char* prefix = xattr_prefix(index)) {
      const char* base = reinterpret_cast<const char*>(p + pos + fmt::kXattrEntryHeaderSize);
      out.emplace_back(std::string(prefix) + std::string(base, name_len),
                       std::string(base + name_len, value_size));
    }
    if (one) return ok_status();
    pos += fmt::round_up(body, 4);
  }
  return ok_status();
}

Result<ErofsReader::Xattrs> ErofsReader::xattrs(const ErofsInode& ino) const {
  Xattrs out;
  if (ino.xattr_size == 0) return out;
  if (ino.xattr_size < fmt::kXattrIbodyHeaderSize) return corrupt("xattr body too small");
  std::vector<unsigned char> body(ino.xattr_size);
  MOAT_TRY(pread_exact(ino.xattr_offset, body.data(), body.size()));
  std::size_t shared = body[4];
  std::size_t inline_start = fmt::kXattrIbodyHeaderSize + shared * 4;
  if (inline_start > body.size()) return corrupt("shared xattr ids past the body");
  MOAT_TRY(decode_xattr_entries(body.data() + inline_start, body.size() - inline_start, false, out));
  std::vector<unsigned char> entry;
  for (std::size_t i = 0; i < shared; ++i) {
    std::uint64_t id = le32(body.data() + fmt::kXattrIbodyHeaderSize + i * 4);
    std::uint64_t off = xattr_base_ + id * 4;
    unsigned char head[fmt::kXattrEntryHeaderSize];
    MOAT_TRY(pread_exact(off, head, sizeof head));
    std::size_t len = fmt::kXattrEntryHeaderSize + head[0] + le16(head + 2);
    entry.resize(len);
    MOAT_TRY(pread_exact(off, entry.data(), len));
    MOAT_TRY(decode_xattr_entries(entry.data(), len, true, out));
  }
  return out;
}

}  // namespace moat::image
