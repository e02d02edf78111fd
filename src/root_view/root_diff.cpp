#include "root_view/root_diff.h"

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

namespace moat::root_view {
namespace {

// The guest's tree cannot be deeper than its paths are long.
constexpr int kMaxDepth = static_cast<int>(image::kErofsMaxPathComponents);
constexpr std::size_t kCompareChunk = 1 << 20;

class Differ {
 public:
  explicit Differ(const OverlayView& v) : v_(v) {}

  Status dir(const std::string& path, const MergedDir& now, std::optional<image::ErofsNid> before, int depth) {
    if (depth > kMaxDepth) return make_error("the root is nested too deeply at " + path, ELOOP);
    // Untouched by the guest: the same lower directory, nothing above it.
    if (!now.upper && now.lower && before && *now.lower == *before) return ok_status();
    MOAT_ASSIGN_OR_RETURN(auto merged, v_.children(now));
    std::map<std::string, image::ErofsNid> old;
    if (before) {
      MOAT_ASSIGN_OR_RETURN(auto entries, v_.lower_entries(*before));
      old.insert(entries.begin(), entries.end());
    }
    auto m = merged.begin();
    auto o = old.begin();
    while (m != merged.end() || o != old.end()) {
      bool take_m = o == old.end() || (m != merged.end() && m->first <= o->first);
      bool take_o = m == merged.end() || (o != old.end() && o->first <= m->first);
      if (take_m && take_o) {
        MOAT_TRY(both(path, m->first, now, m->second, o->second, depth));
        ++m;
        ++o;
      } else if (take_m) {
        MOAT_TRY(added(path, m->first, now, m->second, depth));
        ++m;
      } else {
        changes_.push_back({'D', join_root_path(path, o->first)});
        ++o;
      }
    }
    return ok_status();
  }

  std::vector<RootChange> take() { return std::move(changes_); }

 private:
  Status added(const std::string& parent, const std::string& name, const MergedDir& parent_dir, const RootEntry& e,
               int depth) {
    std::string path = join_root_path(parent, name);
    changes_.push_back({'A', path});
    if (!e.is_dir()) return ok_status();
    MOAT_ASSIGN_OR_RETURN(auto d, v_.child_dir(parent_dir, name, e));
    return dir(path, d, std::nullopt, depth + 1);
  }

  Status both(const std::string& parent, const std::string& name, const MergedDir& parent_dir, const RootEntry& e,
              image::ErofsNid before, int depth) {
    std::string path = join_root_path(parent, name);
    MOAT_ASSIGN_OR_RETURN(auto b, v_.lower().inode(before));
    RootEntry was = entry_of(b);
    MOAT_ASSIGN_OR_RETURN(bool changed, differs(e, was));
    if (changed) changes_.push_back({'C', path});
    if (!e.is_dir()) return ok_status();
    MOAT_ASSIGN_OR_RETURN(auto d, v_.child_dir(parent_dir, name, e));
    return dir(path, d, was.is_dir() ? std::optional<image::ErofsNid>(before) : std::nullopt, depth + 1);
  }

  Result<bool> differs(const RootEntry& now, const RootEntry& was) {
    if (!now.upper && now.lower == was.lower) return false;
    if (now.type() != was.type() || (now.mode & 07777) != (was.mode & 07777) || now.uid != was.uid ||
        now.gid != was.gid || now.mtime_sec != was.mtime_sec || now.mtime_nsec != was.mtime_nsec)
      return true;
    if (!now.is_dir() && now.size != was.size) return true;
    if (now.rdev_major != was.rdev_major || now.rdev_minor != was.rdev_minor) return true;
    MOAT_ASSIGN_OR_RETURN(auto x1, v_.visible_xattrs(now));
    MOAT_ASSIGN_OR_RETURN(auto x2, v_.visible_xattrs(was));
    if (x1 != x2) return true;
    if (now.is_symlink()) {
      MOAT_ASSIGN_OR_RETURN(auto t1, v_.readlink(now));
      MOAT_ASSIGN_OR_RETURN(auto t2, v_.readlink(was));
      return t1 != t2;
    }
    if (now.is_regular()) return contents_differ(now, was);
    return false;
  }

  Result<bool> contents_differ(const RootEntry& now, const RootEntry& was) {
    a_.resize(kCompareChunk);
    b_.resize(kCompareChunk);
    for (std::uint64_t off = 0; off < now.size;) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kCompareChunk, now.size - off));
      MOAT_ASSIGN_OR_RETURN(auto n1, v_.read(now, off, a_.data(), want));
      MOAT_ASSIGN_OR_RETURN(auto n2, v_.read(was, off, b_.data(), want));
      if (n1 != n2 || std::memcmp(a_.data(), b_.data(), n1) != 0) return true;
      if (n1 == 0) break;
      off += n1;
    }
    return false;
  }

  const OverlayView& v_;
  std::vector<RootChange> changes_;
  std::vector<char> a_, b_;
};

}  // namespace

Result<std::vector<RootChange>> diff_root(const OverlayView& view) {
  Differ d(view);
  MOAT_TRY(d.dir("/", view.root(), view.lower().root_nid(), 0));
  return d.take();
}

}  // namespace moat::root_view
