#include "agent/guest_tar.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace moat::agent {
namespace {

// Hardlinks are tracked per (dev, ino) up to this many files; past it a
// further link is archived as a separate copy, so memory stays bounded.
constexpr std::size_t kMaxTrackedLinks = 100000;
constexpr std::uint64_t kMaxOctal11 = 077777777777ull;
constexpr std::uint64_t kMaxOctal7 = 07777777ull;

std::size_t padding_for(std::uint64_t size) {
  return static_cast<std::size_t>((kTarBlock - size % kTarBlock) % kTarBlock);
}

void put_octal(char* field, std::size_t width, std::uint64_t v) {
  // width-1 digits, then NUL.
  for (std::size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
  field[width - 1] = '\0';
}

void put_string(char* field, std::size_t width, std::string_view s) {
  std::memcpy(field, s.data(), std::min(width, s.size()));
}

std::string pax_record(std::string_view key, std::string_view value) {
  std::size_t base = key.size() + value.size() + 3;  // ' ', '=', '\n'
  std::size_t len = base + std::to_string(base).size();
  if (std::to_string(len).size() + base != len) len = base + std::to_string(len).size();
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

void encode_block(const TarHeader& h, std::string_view name, std::string_view link,
                  std::uint64_t size, std::string& out) {
  char b[kTarBlock] = {};
  put_string(b, 100, name);
  put_octal(b + 100, 8, h.mode & 07777);
  put_octal(b + 108, 8, std::min<std::uint64_t>(h.uid, kMaxOctal7));
  put_octal(b + 116, 8, std::min<std::uint64_t>(h.gid, kMaxOctal7));
  put_octal(b + 124, 12, std::min<std::uint64_t>(size, kMaxOctal11));
  put_octal(b + 136, 12, h.mtime < 0 ? 0 : std::min<std::uint64_t>(static_cast<std::uint64_t>(h.mtime), kMaxOctal11));
  b[156] = h.typeflag;
  put_string(b + 157, 100, link);
  std::memcpy(b + 257, "ustar\0" "00", 8);
  std::memset(b + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : b) sum += c;
  put_octal(b + 148, 7, sum);
  b[155] = ' ';
  out.append(b, kTarBlock);
}

// Parses a numeric header field: octal (space/NUL padded) or base-256.
Result<std::uint64_t> parse_number(const char* f, std::size_t width) {
  auto u = reinterpret_cast<const unsigned char*>(f);
  if (u[0] & 0x80) {
    if (u[0] != 0x80) return make_error("tar: negative or oversized base-256 number", EINVAL);
    std::uint64_t v = 0;
    for (std::size_t i = 1; i < width; ++i) {
      if (v >> 56) return make_error("tar: base-256 number overflows", EINVAL);
      v = (v << 8) | u[i];
    }
    return v;
  }
  std::size_t i = 0;
  while (i < width && f[i] == ' ') ++i;
  std::uint64_t v = 0;
  for (; i < width && f[i] >= '0' && f[i] <= '7'; ++i) {
    if (v >> 60) return make_error("tar: octal number overflows", EINVAL);
    v = (v << 3) | static_cast<std::uint64_t>(f[i] - '0');
  }
  for (; i < width; ++i)
    if (f[i] != ' ' && f[i] != '\0') return make_error("tar: bad numeric field", EINVAL);
  return v;
}

std::string field_string(const char* f, std::size_t width) {
  return std::string(f, strnlen(f, width));
}

Result<std::uint64_t> parse_decimal(std::string_view s, std::uint64_t max) {
  if (s.empty() || s.size() > 20) return make_error("tar: bad pax number", EINVAL);
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return make_error("tar: bad pax number", EINVAL);
    if (v > (max - static_cast<std::uint64_t>(c - '0')) / 10) return make_error("tar: pax number out of range", EINVAL);
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

void encode_tar_header(const TarHeader& h, std::string& out) {
  std::string records;
  // Names are the file system's bytes, not necessarily UTF-8; readers such
  // as libarchive would otherwise convert (and refuse) them.
  if (h.name.size() > 100 || h.linkname.size() > 100) records += pax_record("hdrcharset", "BINARY");
  if (h.name.size() > 100) records += pax_record("path", h.name);
  if (h.linkname.size() > 100) records += pax_record("linkpath", h.linkname);
  if (h.size > kMaxOctal11) records += pax_record("size", std::to_string(h.size));
  if (h.uid > kMaxOctal7) records += pax_record("uid", std::to_string(h.uid));
  if (h.gid > kMaxOctal7) records += pax_record("gid", std::to_string(h.gid));
  if (h.mtime < 0 || static_cast<std::uint64_t>(h.mtime) > kMaxOctal11)
    records += pax_record("mtime", std::to_string(h.mtime));
  if (!records.empty()) {
    TarHeader x;
    x.typeflag = 'x';
    encode_block(x, "././@PaxHeader", "", records.size(), out);
    out += records;
    out.append(padding_for(records.size()), '\0');
  }
  encode_block(h, std::string_view(h.name).substr(0, 100), std::string_view(h.linkname).substr(0, 100),
               h.size, out);
}

// ---- writer ----

GuestTarWriter::~GuestTarWriter() {
  for (auto& d : stack_)
    if (d.dir) ::closedir(d.dir);
}

Result<std::unique_ptr<GuestTarWriter>> GuestTarWriter::open(const std::string& path,
                                                             const std::string& top_name) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  std::string parent = "/", leaf = ".";
  if (p != "/") {
    auto slash = p.rfind('/');
    parent = slash == 0 ? "/" : p.substr(0, slash);
    leaf = p.substr(slash + 1);
  }
  // The directory part is resolved as the guest sees it (symlinks included);
  // the entry itself and everything below it are never followed.
  UniqueFd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return errno_error(parent);
  std::unique_ptr<GuestTarWriter> w(new GuestTarWriter());
  MOAT_TRY(w->add_entry(dir.get(), leaf, top_name));
  return w;
}

Status GuestTarWriter::add_entry(int parent, const std::string& leaf, const std::string& name) {
  struct stat st {};
  if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno_error(name);
  TarHeader h;
  h.name = name;
  h.mode = st.st_mode & 07777;
  h.uid = st.st_uid;
  h.gid = st.st_gid;
  h.mtime = st.st_mtim.tv_sec;
  if (S_ISDIR(st.st_mode)) {
    int fd = ::openat(parent, leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno_error(name);
    DIR* d = ::fdopendir(fd);
    if (!d) {
      ::close(fd);
      return errno_error(name);
    }
    h.typeflag = '5';
    h.name += '/';
    stack_.push_back({d, name});
  } else if (S_ISREG(st.st_mode)) {
    auto key = std::make_pair(st.st_dev, st.st_ino);
    auto it = st.st_nlink > 1 ? links_.find(key) : links_.end();
    if (it != links_.end()) {
      h.typeflag = '1';
      h.linkname = it->second;
    } else {
      int fd = ::openat(parent, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return errno_error(name);
      file_.reset(fd);
      h.typeflag = '0';
      h.size = static_cast<std::uint64_t>(st.st_size);
      file_remaining_ = h.size;
      file_padding_ = padding_for(h.size);
      if (st.st_nlink > 1 && links_.size() < kMaxTrackedLinks) links_[key] = name;
    }
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(4096, '\0');
    ssize_t n = ::readlinkat(parent, leaf.c_str(), target.data(), target.size());
    if (n < 0) return errno_error(name);
    target.resize(static_cast<std::size_t>(n));
    h.typeflag = '2';
    h.linkname = target;
  } else if (S_ISFIFO(st.st_mode)) {
    h.typeflag = '6';
  } else {
    return ok_status();  // devices and sockets stay in the guest
  }
  encode_tar_header(h, pending_);
  ++entries_;
  return ok_status();
}

Status GuestTarWriter::next_entry() {
  while (!stack_.empty()) {
    Dir& top = stack_.back();
    errno = 0;
    struct dirent* de = ::readdir(top.dir);
    if (!de) {
      if (errno) return errno_error(top.name);
      ::closedir(top.dir);
      stack_.pop_back();
      continue;
    }
    std::string leaf = de->d_name;
    if (leaf == "." || leaf == "..") continue;
    std::string name = top.name + "/" + leaf;
    return add_entry(::dirfd(top.dir), leaf, name);
  }
  if (!trailer_written_) {
    pending_.append(2 * kTarBlock, '\0');
    trailer_written_ = true;
  } else {
    done_ = true;
  }
  return ok_status();
}

Result<std::size_t> GuestTarWriter::read(char* out, std::size_t max) {
  std::size_t added = 0;
  while (added < max && !done_) {
    if (pending_pos_ < pending_.size()) {
      std::size_t n = std::min(max - added, pending_.size() - pending_pos_);
      std::memcpy(out + added, pending_.data() + pending_pos_, n);
      pending_pos_ += n;
      added += n;
      if (pending_pos_ == pending_.size()) {
        pending_.clear();
        pending_pos_ = 0;
      }
      continue;
    }
    if (file_.valid()) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(file_remaining_, max - added));
      ssize_t n = want ? ::read(file_.get(), out + added, want) : 0;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error("read");
      // A file that shrank while being archived is padded with zeros to the
      // size its header announced; one that grew is cut at that size.
      std::size_t got = n == 0 ? want : static_cast<std::size_t>(n);
      if (n == 0) std::memset(out + added, 0, want);
      added += got;
      file_remaining_ -= got;
      if (file_remaining_ == 0) {
        file_.reset();
        pending_.append(file_padding_, '\0');
      }
      continue;
    }
    MOAT_TRY(next_entry());
  }
  return added;
}

// ---- reader ----

Status GuestTarReader::feed(std::string_view data) {
  while (!data.empty()) {
    switch (state_) {
      case State::kEnd:
        return ok_status();  // anything after the end-of-archive blocks is ignored
      case State::kHeader: {
        std::size_t n = std::min(kTarBlock - block_.size(), data.size());
        block_.append(data.substr(0, n));
        data.remove_prefix(n);
        if (block_.size() == kTarBlock) {
          MOAT_TRY(on_header());
          block_.clear();
        }
        break;
      }
      case State::kData:
      case State::kSkip:
      case State::kMeta: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size()));
        if (state_ == State::kData) MOAT_TRY(writer_.write(data.substr(0, n)));
        if (state_ == State::kMeta) meta_.append(data.substr(0, n));
        data.remove_prefix(n);
        remaining_ -= n;
        if (remaining_ == 0) {
          if (state_ == State::kMeta) MOAT_TRY(on_meta_complete());
          state_ = padding_ ? State::kPadding : State::kHeader;
        }
        break;
      }
      case State::kPadding: {
        std::size_t n = std::min(padding_, data.size());
        data.remove_prefix(n);
        padding_ -= n;
        if (padding_ == 0) state_ = State::kHeader;
        break;
      }
    }
  }
  return ok_status();
}

Status GuestTarReader::on_header() {
  const char* b = block_.data();
  if (std::all_of(block_.begin(), block_.end(), [](char c) { return c == 0; })) {
    if (++zero_blocks_ >= 2) state_ = State::kEnd;
    return ok_status();
  }
  zero_blocks_ = 0;
  MOAT_ASSIGN_OR_RETURN(auto want, parse_number(b + 148, 8));
  std::uint64_t sum = 0;
  std::int64_t ssum = 0;
  for (std::size_t i = 0; i < kTarBlock; ++i) {
    bool in_chk = i >= 148 && i < 156;
    sum += in_chk ? ' ' : static_cast<unsigned char>(b[i]);
    ssum += in_chk ? ' ' : static_cast<signed char>(b[i]);
  }
  if (sum != want && static_cast<std::uint64_t>(ssum) != want)
    return make_error("tar: header checksum mismatch", EINVAL);

  TarHeader h;
  h.typeflag = b[156];
  h.name = field_string(b, 100);
  if (std::memcmp(b + 257, "ustar\0", 6) == 0) {
    std::string prefix = field_string(b + 345, 155);
    if (!prefix.empty()) h.name = prefix + "/" + h.name;
  }
  h.linkname = field_string(b + 157, 100);
  MOAT_ASSIGN_OR_RETURN(auto mode, parse_number(b + 100, 8));
  MOAT_ASSIGN_OR_RETURN(auto uid, parse_number(b + 108, 8));
  MOAT_ASSIGN_OR_RETURN(auto gid, parse_number(b + 116, 8));
  MOAT_ASSIGN_OR_RETURN(h.size, parse_number(b + 124, 12));
  MOAT_ASSIGN_OR_RETURN(auto mtime, parse_number(b + 136, 12));
  h.mode = static_cast<std::uint32_t>(mode & 07777);
  h.uid = static_cast<std::uint32_t>(std::min<std::uint64_t>(uid, 0xfffffffe));
  h.gid = static_cast<std::uint32_t>(std::min<std::uint64_t>(gid, 0xfffffffe));
  h.mtime = static_cast<std::int64_t>(std::min<std::uint64_t>(mtime, INT64_MAX));

  if (h.typeflag == 'x' || h.typeflag == 'g' || h.typeflag == 'L' || h.typeflag == 'K') {
    if (h.size > kMaxTarMetaSize) return make_error("tar: extended header too large", E2BIG);
    meta_type_ = h.typeflag;
    meta_.clear();
    remaining_ = h.size;
    padding_ = padding_for(h.size);
    if (remaining_ == 0) {
      MOAT_TRY(on_meta_complete());
      state_ = State::kHeader;
    } else {
      state_ = State::kMeta;
    }
    return ok_status();
  }
  if (pax_path_) h.name = *pax_path_;
  if (pax_link_) h.linkname = *pax_link_;
  if (pax_size_) h.size = *pax_size_;
  if (pax_uid_) h.uid = static_cast<std::uint32_t>(*pax_uid_);
  if (pax_gid_) h.gid = static_cast<std::uint32_t>(*pax_gid_);
  if (pax_mtime_) h.mtime = *pax_mtime_;
  pax_path_.reset();
  pax_link_.reset();
  pax_size_.reset();
  pax_uid_.reset();
  pax_gid_.reset();
  pax_mtime_.reset();
  return start_entry(h);
}

Status GuestTarReader::on_meta_complete() {
  if (meta_type_ == 'L' || meta_type_ == 'K') {
    std::string s = meta_.substr(0, strnlen(meta_.data(), meta_.size()));
    (meta_type_ == 'L' ? pax_path_ : pax_link_) = s;
    return ok_status();
  }
  if (meta_type_ == 'g') return ok_status();  // global records: nothing moat uses
  std::string_view rest = meta_;
  while (!rest.empty()) {
    auto space = rest.find(' ');
    if (space == std::string_view::npos || space > 20) return make_error("tar: bad pax record", EINVAL);
    MOAT_ASSIGN_OR_RETURN(auto len, parse_decimal(rest.substr(0, space), rest.size()));
    if (len <= space + 2 || rest[len - 1] != '\n') return make_error("tar: bad pax record", EINVAL);
    std::string_view rec = rest.substr(space + 1, len - space - 2);
    rest.remove_prefix(len);
    auto eq = rec.find('=');
    if (eq == std::string_view::npos) return make_error("tar: bad pax record", EINVAL);
    std::string_view key = rec.substr(0, eq), value = rec.substr(eq + 1);
    if (key == "path") {
      pax_path_ = std::string(value);
    } else if (key == "linkpath") {
      pax_link_ = std::string(value);
    } else if (key == "size") {
      MOAT_ASSIGN_OR_RETURN(auto v, parse_decimal(value, INT64_MAX));
      pax_size_ = v;
    } else if (key == "uid" || key == "gid") {
      MOAT_ASSIGN_OR_RETURN(auto v, parse_decimal(value, 0xfffffffe));
      (key == "uid" ? pax_uid_ : pax_gid_) = v;
    } else if (key == "mtime") {
      // Seconds, optionally negative and with a fraction; the fraction is dropped.
      bool neg = !value.empty() && value[0] == '-';
      if (neg) value.remove_prefix(1);
      value = value.substr(0, value.find('.'));
      MOAT_ASSIGN_OR_RETURN(auto v, parse_decimal(value, INT64_MAX));
      pax_mtime_ = neg ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
    }
  }
  return ok_status();
}

Status GuestTarReader::start_entry(const TarHeader& h) {
  TreeEntry e;
  e.path = h.name;
  e.mode = h.mode;
  e.uid = h.uid;
  e.gid = h.gid;
  e.mtime_sec = h.mtime;
  bool writes_data = false;
  bool known = true;
  switch (h.typeflag) {
    case '0': case '\0': case '7':
      e.type = proto::FileType::kFile;
      e.size = h.size;
      writes_data = true;
      break;
    case '1':
      e.hardlink = true;
      e.link = h.linkname;
      break;
    case '2':
      e.type = proto::FileType::kSymlink;
      e.link = h.linkname;
      break;
    case '5':
      e.type = proto::FileType::kDir;
      break;
    case '6':
      e.type = proto::FileType::kFifo;
      break;
    default:
      known = false;  // devices, sockets, vendor types: skipped
  }
  if (known) MOAT_TRY(writer_.begin(e));
  remaining_ = h.size;
  padding_ = padding_for(h.size);
  if (remaining_ == 0) {
    state_ = State::kHeader;
    padding_ = 0;
  } else {
    state_ = writes_data ? State::kData : State::kSkip;
  }
  return ok_status();
}

Status GuestTarReader::finish() {
  if (state_ != State::kEnd && (state_ != State::kHeader || !block_.empty()))
    return make_error("tar: the archive ended inside an entry", EIO);
  return writer_.finish();
}

}  // namespace moat::agent
