#include "image/tree_path.h"

#include <cerrno>

#include "image/fs_tree.h"

namespace moat::image {

Result<std::vector<std::string_view>> split_entry_path(std::string_view path,
                                                       std::size_t max_length) {
  if (path.size() > max_length) return make_error("path longer than the limit", ENAMETOOLONG);
  if (path.find('\0') != std::string_view::npos) return make_error("path contains NUL", EINVAL);
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view comp = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      if (out.empty()) return make_error("path escapes the root with '..'", EPERM);
      out.pop_back();
      continue;
    }
    MOAT_TRY(validate_entry_name(comp));
    out.push_back(comp);
  }
  return out;
}

std::string join_path(const std::vector<std::string_view>& components, std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count && i < components.size(); ++i) {
    if (i) out.push_back('/');
    out.append(components[i]);
  }
  return out;
}

}  // namespace moat::image
