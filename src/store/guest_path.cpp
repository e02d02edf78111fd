#include "store/guest_path.h"

#include <cerrno>

namespace moat::store {

Result<std::vector<std::string>> split_guest_path(std::string_view path) {
  std::string shown(path.substr(0, 200));
  if (path.empty() || path.front() != '/') {
    return make_error("guest path '" + shown + "' is not absolute", EINVAL);
  }
  if (path.size() > kMaxGuestPathLength) {
    return make_error("guest path '" + shown + "...' is longer than 4096 bytes", ENAMETOOLONG);
  }
  if (path.find('\0') != std::string_view::npos) {
    return make_error("guest path '" + shown + "' contains NUL", EINVAL);
  }
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view name = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      if (out.empty()) return make_error("guest path '" + shown + "' escapes the root with '..'", EPERM);
      out.pop_back();
      continue;
    }
    if (name.size() > kMaxGuestNameLength) {
      return make_error("guest path '" + shown + "' has a name longer than 255 bytes", ENAMETOOLONG);
    }
    out.emplace_back(name);
  }
  return out;
}

std::string join_guest_path(const std::vector<std::string>& components, std::size_t count) {
  if (count == 0 || components.empty()) return "/";
  std::string out;
  for (std::size_t i = 0; i < count && i < components.size(); ++i) {
    out.push_back('/');
    out += components[i];
  }
  return out;
}

std::string join_guest_path(const std::vector<std::string>& components) {
  return join_guest_path(components, components.size());
}

std::string guest_child(const std::string& parent, const std::string& name) {
  return parent == "/" ? "/" + name : parent + "/" + name;
}

}  // namespace moat::store
