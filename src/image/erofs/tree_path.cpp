#include "image/erofs/tree_path.h"

#include <cerrno>

#include "image/erofs/fs_tree.h"
#include "util/path_names.h"

namespace moat::image {

Result<std::vector<std::string_view>> split_entry_path(std::string_view path,
                                                       std::size_t max_length) {
  if (path.size() > max_length) return make_error("path longer than the limit", ENAMETOOLONG);
  if (path.find('\0') != std::string_view::npos) return make_error("path contains NUL", EINVAL);
  // Resolves ".." like store::split_guest_path, but takes relative names
  // (tar entries) and checks each name as an image entry.
  std::vector<std::string_view> out;
  MOAT_TRY(for_each_path_name(path, [&](std::string_view comp) -> Status {
    if (comp == "..") {
      if (out.empty()) return make_error("path escapes the root with '..'", EPERM);
      out.pop_back();
      return ok_status();
    }
    MOAT_TRY(validate_entry_name(comp));
    out.push_back(comp);
    return ok_status();
  }));
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
