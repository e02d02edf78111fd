#include "image/layers/layer_applier.h"

#include <cerrno>
#include <vector>

#include "image/erofs/erofs_xattr.h"
#include "image/erofs/tree_path.h"

namespace moat::image {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kAufsMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr std::size_t kReadChunk = 1 << 20;

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Xattrs that cannot or must not go into the image.
bool keep_xattr(const std::string& name) {
  if (!erofs::split_xattr_name(name).ok()) return false;
  return !starts_with(name, "trusted.overlay.");
}

}  // namespace

Result<std::string> LayerApplier::apply(TarReader& reader) {
  upper_.clear();
  upper_bytes_ = 0;
  std::uint64_t budget = limits_.max_uncompressed_bytes - stats_.uncompressed_bytes;
  reader.set_max_uncompressed(budget);
  TarEntry entry;
  while (true) {
    MOAT_ASSIGN_OR_RETURN(bool more, reader.next(entry));
    if (!more) break;
    if (++stats_.entries > limits_.max_entries) {
      return make_error("layers have more than " + std::to_string(limits_.max_entries) +
                            " entries",
                        EFBIG);
    }
    if (auto st = apply_entry(reader, entry); !st.ok()) {
      return st.error().wrap("tar entry '" + entry.path + "'");
    }
  }
  stats_.uncompressed_bytes += reader.uncompressed_size();
  return reader.diff_id();
}

Status LayerApplier::apply_entry(TarReader& reader, TarEntry& entry) {
  MOAT_ASSIGN_OR_RETURN(auto path, split_entry_path(entry.path, limits_.max_path_length));
  if (path.empty()) return apply_root(entry);
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    // Entries inside AUFS bookkeeping directories are not image content.
    if (starts_with(path[i], kAufsMetaPrefix)) return ok_status();
    if (starts_with(path[i], kWhiteoutPrefix)) {
      return make_error("whiteout name used as a directory", EINVAL);
    }
  }
  if (starts_with(path.back(), kWhiteoutPrefix)) return apply_whiteout(path);
  MOAT_ASSIGN_OR_RETURN(Inode * parent, walk_parent(path, true));
  MOAT_TRY(mark_upper(path));
  return add_entry(reader, entry, *parent, path);
}

Status LayerApplier::apply_root(const TarEntry& entry) {
  if (entry.is_hardlink || entry.type != FileType::kDirectory) {
    return make_error("the root entry must be a directory", EINVAL);
  }
  TarEntry copy = entry;
  set_metadata(tree_.root(), copy);
  return ok_status();
}

Status LayerApplier::apply_whiteout(const std::vector<std::string_view>& path) {
  ++stats_.whiteouts;
  std::string_view name = path.back();
  bool opaque = name == kOpaqueMarker;
  if (!opaque && starts_with(name, kAufsMetaPrefix)) return ok_status();
  std::string_view target = name.substr(kWhiteoutPrefix.size());
  if (!opaque) {
    if (auto st = validate_entry_name(target); !st.ok()) return st.error().wrap("invalid whiteout");
  }
  // A whiteout never creates anything: a missing parent means nothing to hide.
  auto parent = walk_parent(path, false);
  if (!parent.ok()) return parent.error();
  if (*parent == nullptr) return ok_status();
  std::string dir_path = join_path(path, path.size() - 1);
  std::string prefix = dir_path.empty() ? "" : dir_path + "/";
  if (opaque) {
    std::vector<std::string> names;
    for (const auto& [child, inode] : (*parent)->children) names.push_back(child);
    for (const std::string& child : names) prune(**parent, child, prefix + child);
    return ok_status();
  }
  std::string target_name(target);
  if ((*parent)->children.count(target_name)) prune(**parent, target_name, prefix + target_name);
  return ok_status();
}

// Removes what lower layers put at `path`, sparing this layer's entries.
void LayerApplier::prune(Inode& parent, const std::string& name, const std::string& path) {
  auto it = parent.children.find(name);
  if (it == parent.children.end()) return;
  if (!upper_.count(path)) {
    parent.children.erase(it);
    return;
  }
  Inode& node = *it->second;
  if (!node.is_dir()) return;
  std::vector<std::string> names;
  for (const auto& [child, inode] : node.children) names.push_back(child);
  for (const std::string& child : names) prune(node, child, path + "/" + child);
}

// The directory that holds the last component. Missing directories are
// created when `create` is set, otherwise the result is null.
Result<Inode*> LayerApplier::walk_parent(const std::vector<std::string_view>& path, bool create) {
  Inode* dir = &tree_.root();
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    auto it = dir->children.find(path[i]);
    if (it == dir->children.end()) {
      if (!create) return nullptr;
      auto made = make_inode(FileType::kDirectory, 0755);
      it = dir->children.emplace(std::string(path[i]), std::move(made)).first;
    }
    Inode& child = *it->second;
    if (child.type == FileType::kSymlink) {
      return make_error("parent path '" + join_path(path, i + 1) + "' is a symlink", ELOOP);
    }
    if (!child.is_dir()) {
      return make_error("parent path '" + join_path(path, i + 1) + "' is not a directory",
                        ENOTDIR);
    }
    dir = &child;
  }
  return dir;
}

// Marks the path and its ancestors, deepest first: once an ancestor is
// already marked, so are all above it.
Status LayerApplier::mark_upper(const std::vector<std::string_view>& path) {
  std::string full = join_path(path, path.size());
  std::size_t end = full.size();
  while (end > 0 && upper_.insert(full.substr(0, end)).second) {
    upper_bytes_ += end;
    std::size_t slash = full.rfind('/', end - 1);
    end = slash == std::string::npos ? 0 : slash;
  }
  if (upper_bytes_ > limits_.max_layer_path_bytes) {
    return make_error("layer paths exceed the size limit", EFBIG);
  }
  return ok_status();
}

Status LayerApplier::add_entry(TarReader& reader, TarEntry& entry, Inode& parent,
                               const std::vector<std::string_view>& path) {
  std::string name(path.back());
  auto existing = parent.children.find(name);
  if (entry.is_hardlink) {
    MOAT_ASSIGN_OR_RETURN(InodePtr target, resolve_hardlink(entry.link_target));
    parent.children[name] = std::move(target);
    return ok_status();
  }
  if (entry.type == FileType::kDirectory && existing != parent.children.end() &&
      existing->second->is_dir()) {
    set_metadata(*existing->second, entry);
    return ok_status();
  }
  MOAT_ASSIGN_OR_RETURN(InodePtr inode, new_inode(reader, entry));
  parent.children[name] = std::move(inode);
  return ok_status();
}

Result<InodePtr> LayerApplier::resolve_hardlink(const std::string& target) {
  auto path = split_entry_path(target, limits_.max_path_length);
  if (!path.ok()) return path.error().wrap("hardlink target '" + target + "'");
  if (path->empty()) return make_error("hardlink to the root directory", EPERM);
  auto parent = walk_parent(*path, false);
  if (!parent.ok()) return parent.error().wrap("hardlink target '" + target + "'");
  auto it = *parent ? (*parent)->children.find(path->back())
                    : DirEntries::iterator{};
  if (!*parent || it == (*parent)->children.end()) {
    return make_error("hardlink target '" + target + "' does not exist", ENOENT);
  }
  if (it->second->is_dir()) {
    return make_error("hardlink target '" + target + "' is a directory", EPERM);
  }
  return it->second;
}

Result<InodePtr> LayerApplier::new_inode(TarReader& reader, TarEntry& entry) {
  auto inode = make_inode(entry.type);
  set_metadata(*inode, entry);
  switch (entry.type) {
    case FileType::kSymlink: inode->symlink_target = std::move(entry.link_target); break;
    case FileType::kCharDevice:
    case FileType::kBlockDevice:
      inode->rdev_major = entry.dev_major;
      inode->rdev_minor = entry.dev_minor;
      break;
    case FileType::kRegular: MOAT_TRY(read_content(reader, entry, *inode)); break;
    default: break;
  }
  MOAT_TRY(validate_inode(*inode));
  return inode;
}

Status LayerApplier::read_content(TarReader& reader, const TarEntry& entry, Inode& inode) {
  if (entry.size > limits_.max_content_bytes - stats_.content_bytes) {
    return make_error("layer contents exceed the size limit", EFBIG);
  }
  buf_.resize(kReadChunk);
  spool_.begin();
  std::uint64_t total = 0;
  while (true) {
    MOAT_ASSIGN_OR_RETURN(std::size_t n, reader.read(buf_.data(), buf_.size()));
    if (n == 0) break;
    total += n;
    if (total > entry.size) return make_error("file data longer than its header says", EIO);
    MOAT_TRY(spool_.append(buf_.data(), n));
  }
  MOAT_ASSIGN_OR_RETURN(inode.content, spool_.finish());
  if (inode.content.size != entry.size) {
    return make_error("file data shorter than its header says", EIO);
  }
  stats_.content_bytes += total;
  return ok_status();
}

void LayerApplier::set_metadata(Inode& inode, TarEntry& entry) {
  inode.mode = entry.mode & 07777;
  inode.uid = entry.uid;
  inode.gid = entry.gid;
  inode.mtime = entry.mtime;
  inode.xattrs.clear();
  std::size_t bytes = 0;
  for (auto& [name, value] : entry.xattrs) {
    bytes += name.size() + value.size();
    if (!keep_xattr(name) || value.size() > kMaxXattrValueSize ||
        bytes > limits_.max_xattr_bytes_per_entry) {
      ++stats_.dropped_xattrs;
      continue;
    }
    inode.xattrs[name] = std::move(value);
  }
}

}  // namespace moat::image
