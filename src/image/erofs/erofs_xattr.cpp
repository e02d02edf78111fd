#include "image/erofs/erofs_xattr.h"

#include <cerrno>
#include <vector>

#include "image/erofs/erofs_format.h"

namespace moat::image::erofs {
namespace {

struct Prefix {
  std::string_view text;
  std::uint8_t index;
  bool whole_name;  // the ACL names are matched whole, with an empty suffix
};

constexpr Prefix kPrefixes[] = {
    {"user.", kXattrIndexUser, false},
    {"system.posix_acl_access", kXattrIndexPosixAclAccess, true},
    {"system.posix_acl_default", kXattrIndexPosixAclDefault, true},
    {"trusted.", kXattrIndexTrusted, false},
    {"security.", kXattrIndexSecurity, false},
};

// i_xattr_icount is a u16 counting 4-byte units after the 12-byte header.
constexpr std::size_t kMaxBodySize = kXattrIbodyHeaderSize + 4 * (0xFFFFu - 1);

// Which xattrs of an inode go to the shared area, respecting the u8 count.
std::vector<std::int64_t> shared_offsets(const Inode& inode, const SharedXattrs& shared) {
  std::vector<std::int64_t> out;
  for (const auto& [name, value] : inode.xattrs) {
    if (out.size() == kMaxSharedPerInode) break;
    std::int64_t off = shared.offset_of(name, value);
    if (off >= 0) out.push_back(off);
  }
  return out;
}

}  // namespace

Result<XattrName> split_xattr_name(std::string_view name) {
  for (const Prefix& p : kPrefixes) {
    if (p.whole_name) {
      if (name == p.text) return XattrName{p.index, {}};
    } else if (name.size() > p.text.size() && name.substr(0, p.text.size()) == p.text) {
      return XattrName{p.index, name.substr(p.text.size())};
    }
  }
  return make_error("xattr '" + std::string(name) + "' has no prefix EROFS can store", ENOTSUP);
}

std::size_t xattr_entry_size(std::size_t suffix_size, std::size_t value_size) {
  return round_up(kXattrEntryHeaderSize + suffix_size + value_size, 4);
}

void append_xattr_entry(const XattrName& name, std::string_view value, std::string& out) {
  unsigned char header[kXattrEntryHeaderSize];
  header[0] = static_cast<unsigned char>(name.suffix.size());
  header[1] = name.index;
  put_le16(header + 2, static_cast<std::uint16_t>(value.size()));
  std::size_t start = out.size();
  out.append(reinterpret_cast<const char*>(header), sizeof header);
  out.append(name.suffix);
  out.append(value);
  out.resize(start + xattr_entry_size(name.suffix.size(), value.size()), '\0');
}

void SharedXattrs::count(const Inode& inode) {
  for (const auto& [name, value] : inode.xattrs) ++entries_[Key(name, value)];
}

void SharedXattrs::finalize() {
  size_ = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second < 2 || !split_xattr_name(it->first.first).ok()) {
      it = entries_.erase(it);
      continue;
    }
    it->second = static_cast<std::int64_t>(size_);
    auto name = split_xattr_name(it->first.first);
    size_ += xattr_entry_size(name->suffix.size(), it->first.second.size());
    ++it;
  }
}

std::int64_t SharedXattrs::offset_of(std::string_view name, std::string_view value) const {
  auto it = entries_.find(Key(name, value));
  return it == entries_.end() ? -1 : it->second;
}

void SharedXattrs::encode(std::string& out) const {
  for (const auto& [key, offset] : entries_) {
    append_xattr_entry(*split_xattr_name(key.first), key.second, out);
  }
}

Result<XattrBodyPlan> plan_xattr_body(const Inode& inode, const SharedXattrs& shared) {
  if (inode.xattrs.empty()) return XattrBodyPlan{};
  std::vector<std::int64_t> shared_ids = shared_offsets(inode, shared);
  std::size_t size = kXattrIbodyHeaderSize + 4 * shared_ids.size();
  std::size_t left_shared = shared_ids.size();
  for (const auto& [name, value] : inode.xattrs) {
    MOAT_ASSIGN_OR_RETURN(XattrName split, split_xattr_name(name));
    if (left_shared > 0 && shared.offset_of(name, value) >= 0) {
      --left_shared;
      continue;
    }
    size += xattr_entry_size(split.suffix.size(), value.size());
  }
  if (size > kMaxBodySize) return make_error("xattrs of one file exceed 256 KiB", E2BIG);
  return XattrBodyPlan{size, static_cast<std::uint16_t>((size - kXattrIbodyHeaderSize) / 4 + 1)};
}

void append_xattr_body(const Inode& inode, const SharedXattrs& shared,
                       std::uint32_t shared_base_id, std::string& out) {
  if (inode.xattrs.empty()) return;
  std::vector<std::int64_t> shared_ids = shared_offsets(inode, shared);
  unsigned char header[kXattrIbodyHeaderSize] = {};
  // h_name_filter stays 0: the XATTR_FILTER feature is not set, so the kernel
  // ignores it.
  header[4] = static_cast<unsigned char>(shared_ids.size());
  out.append(reinterpret_cast<const char*>(header), sizeof header);
  for (std::int64_t off : shared_ids) {
    unsigned char id[4];
    put_le32(id, shared_base_id + static_cast<std::uint32_t>(off / 4));
    out.append(reinterpret_cast<const char*>(id), 4);
  }
  std::size_t left_shared = shared_ids.size();
  for (const auto& [name, value] : inode.xattrs) {
    if (left_shared > 0 && shared.offset_of(name, value) >= 0) {
      --left_shared;
      continue;
    }
    append_xattr_entry(*split_xattr_name(name), value, out);
  }
}

}  // namespace moat::image::erofs
