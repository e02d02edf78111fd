// Walking the names of a slash-separated path, for every component (the
// static guest agent too: header only).
#pragma once

#include <cstddef>
#include <string_view>

#include "util/result.h"

namespace moat {

// Calls visit(name) for each name between slashes of `path`, in order,
// skipping empty names and "." ("/a//./b/" gives a, b), and stops at the
// first visit that fails, returning its error. The names are views into
// `path`. What ".." means is left to the caller, because the callers differ:
// guest paths and layer entries resolve it lexically, archive entry names
// reject it outright.
template <typename Visit>
Status for_each_path_name(std::string_view path, Visit&& visit) {
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view name = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (name.empty() || name == ".") continue;
    MOAT_TRY(visit(name));
  }
  return ok_status();
}

// Calls visit(prefix) for each leading part of `path` that ends with a
// name, shortest first, skipping empty names: what `mkdir -p` creates
// ("/a//b/" gives "/a", "/a//b"; "a/b" gives "a", "a/b"). Stops at the first
// visit that fails, returning its error. The prefixes are views into `path`.
template <typename Visit>
Status for_each_path_prefix(std::string_view path, Visit&& visit) {
  std::size_t pos = 0;
  while (pos < path.size()) {
    std::size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > pos) MOAT_TRY(visit(path.substr(0, slash)));
    pos = slash + 1;
  }
  return ok_status();
}

}  // namespace moat
