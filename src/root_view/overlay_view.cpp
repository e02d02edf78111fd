#include "root_view/overlay_view.h"

#include <algorithm>
#include <cerrno>
#include <map>

namespace moat::root_view {
namespace {

// A redirect names a lower directory by path: bounded, clean, no "..".
constexpr std::size_t kMaxRedirect = 4095;

bool clean_redirect(const std::string& r) {
  if (r.empty() || r.size() > kMaxRedirect) return false;
  std::size_t start = r[0] == '/' ? 1 : 0;
  while (start <= r.size()) {
    std::size_t end = r.find('/', start);
    if (end == std::string::npos) end = r.size();
    std::string part = r.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

std::string join_root_path(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

RootEntry entry_of(const Ext4Inode& n) {
  RootEntry e;
  e.mode = n.mode;
  e.uid = n.uid;
  e.gid = n.gid;
  e.nlink = n.nlink;
  e.size = n.size;
  e.mtime_sec = n.mtime_sec;
  e.mtime_nsec = n.mtime_nsec;
  e.rdev_major = n.rdev_major;
  e.rdev_minor = n.rdev_minor;
  e.upper = n.ino;
  return e;
}

RootEntry entry_of(const image::ErofsInode& n) {
  RootEntry e;
  e.mode = n.mode;
  e.uid = n.uid;
  e.gid = n.gid;
  e.nlink = n.nlink;
  e.size = n.size;
  e.mtime_sec = n.mtime_sec;
  e.mtime_nsec = n.mtime_nsec;
  if (n.type() == 0020000 || n.type() == 0060000) {
    e.rdev_major = n.rdev_major();
    e.rdev_minor = n.rdev_minor();
  }
  e.lower = n.nid;
  return e;
}

MergedDir OverlayView::root() const { return MergedDir{upper_dir_, lower_.root_nid(), "/"}; }

Result<std::vector<std::pair<std::string, image::ErofsNid>>> OverlayView::lower_entries(image::ErofsNid dir) const {
  std::vector<std::pair<std::string, image::ErofsNid>> names;
  MOAT_TRY(lower_.read_dir(dir, [&](const image::ErofsDirent& d) {
    if (d.name != "." && d.name != ".." && names.size() < kMaxDirEntries) names.emplace_back(std::string(d.name), d.nid);
    return true;
  }));
  return names;
}

Result<std::vector<std::pair<std::string, RootEntry>>> OverlayView::children(const MergedDir& dir) const {
  std::map<std::string, RootEntry> merged;
  std::map<std::string, bool> hidden;  // names the upper whites out or replaces
  if (dir.upper) {
    MOAT_ASSIGN_OR_RETURN(auto names, upper_.list(*dir.upper));
    for (const auto& [name, ino] : names) {
      MOAT_ASSIGN_OR_RETURN(auto n, upper_.inode(ino));
      hidden[name] = true;
      if (n.is_whiteout()) continue;
      merged.emplace(name, entry_of(n));
    }
  }
  if (dir.lower) {
    MOAT_ASSIGN_OR_RETURN(auto names, lower_entries(*dir.lower));
    for (const auto& [name, nid] : names) {
      if (hidden.count(name)) continue;
      MOAT_ASSIGN_OR_RETURN(auto n, lower_.inode(nid));
      merged.emplace(name, entry_of(n));
    }
  }
  return std::vector<std::pair<std::string, RootEntry>>(merged.begin(), merged.end());
}

Result<MergedDir> OverlayView::child_dir(const MergedDir& parent, const std::string& name, const RootEntry& e) const {
  MergedDir d;
  if (!e.upper) {
    d.lower = e.lower;
    d.lower_path = join_root_path(parent.lower_path, name);
    return d;
  }
  d.upper = e.upper;
  // One read of the directory's xattrs for both marks.
  MOAT_ASSIGN_OR_RETURN(auto xattrs, upper_.xattrs(*e.upper));
  std::optional<std::string> redirect;
  for (auto& [k, v] : xattrs) {
    if (k == std::string(kOverlayXattrPrefix) + "opaque") d.opaque = v == "y";
    if (k == std::string(kOverlayXattrPrefix) + "redirect") redirect = std::move(v);
  }
  d.redirected = redirect.has_value();
  if (d.opaque) return d;
  std::string path;
  if (redirect) {
    if (!clean_redirect(*redirect)) return make_error("a directory's overlay redirect is not a clean path", EIO);
    if ((*redirect)[0] == '/') {
      path = *redirect;
    } else {
      if (!parent.lower) return d;  // nothing below to redirect into
      path = join_root_path(parent.lower_path, *redirect);
    }
  } else {
    if (!parent.lower) return d;
    path = join_root_path(parent.lower_path, name);
  }
  auto nid = lower_.lookup_path(path);
  if (!nid) {
    if (nid.error().code == ENOENT || nid.error().code == ENOTDIR) return d;
    return nid.error();
  }
  MOAT_ASSIGN_OR_RETURN(auto n, lower_.inode(*nid));
  if (!n.is_dir()) return d;
  d.lower = *nid;
  d.lower_path = path;
  return d;
}

Result<Xattrs> OverlayView::visible_xattrs(const RootEntry& e) const {
  Xattrs out;
  if (e.upper) {
    MOAT_ASSIGN_OR_RETURN(out, upper_.xattrs(*e.upper));
  } else if (e.lower) {
    MOAT_ASSIGN_OR_RETURN(out, lower_.xattrs(*e.lower));
  }
  std::string prefix = kOverlayXattrPrefix;
  out.erase(std::remove_if(out.begin(), out.end(), [&](const auto& kv) { return kv.first.rfind(prefix, 0) == 0; }),
            out.end());
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> OverlayView::readlink(const RootEntry& e) const {
  if (e.upper) {
    MOAT_ASSIGN_OR_RETURN(auto n, upper_.inode(*e.upper));
    return upper_.readlink(n);
  }
  return lower_.readlink(*e.lower);
}

Result<std::size_t> OverlayView::read(const RootEntry& e, std::uint64_t offset, void* buf, std::size_t len) const {
  if (e.upper) return upper_.read(*e.upper, offset, buf, len);
  return lower_.read(*e.lower, offset, buf, len);
}

}  // namespace moat::root_view
