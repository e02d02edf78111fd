#include "store/guest_path.h"

#include <cerrno>

#include "util/path_names.h"

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
  // ".." is resolved lexically, as the guest's kernel would, but never
  // above the root; image::split_entry_path has the same rule for layer
  // entries, with its own limits and messages.
  std::vector<std::string> out;
  MOAT_TRY(for_each_path_name(path, [&](std::string_view name) -> Status {
    if (name == "..") {
      if (out.empty()) return make_error("guest path '" + shown + "' escapes the root with '..'", EPERM);
      out.pop_back();
      return ok_status();
    }
    if (name.size() > kMaxGuestNameLength) {
      return make_error("guest path '" + shown + "' has a name longer than 255 bytes", ENAMETOOLONG);
    }
    out.emplace_back(name);
    return ok_status();
  }));
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
