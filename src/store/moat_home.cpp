#include "store/moat_home.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "util/path_names.h"
#include "util/runtime_settings.h"

namespace moat::store {

Result<std::string> moat_home() {
  std::string home = util::configured_home();
  if (!home.empty()) {
  } else if (const char* v = std::getenv("MOAT_HOME"); v && *v) {
    home = v;
  } else if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) {
    home = std::string(x) + "/moat";
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    home = std::string(h) + "/.local/share/moat";
  } else {
    return make_error("cannot find a state directory: set $MOAT_HOME or $HOME");
  }
  MOAT_TRY(make_dirs(home, 0700));
  return home;
}

std::string sandboxes_dir(const std::string& home) { return home + "/sandboxes"; }

std::string home_of_sandbox_dir(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  for (int up = 0; up < 2; ++up) {  // ID, then sandboxes
    auto slash = d.rfind('/');
    d = slash == std::string::npos ? "." : slash == 0 ? "/" : d.substr(0, slash);
  }
  return d;
}
std::string cache_dir(const std::string& home) {
  // Caches hold only derived, content-addressed data, so several state
  // directories (tests, users) may share one.
  if (std::string c = util::configured_cache_dir(); !c.empty()) return c;
  if (const char* v = std::getenv("MOAT_CACHE_DIR"); v && *v) return v;
  return home + "/cache";
}

Status make_dirs(const std::string& path, unsigned mode) {
  if (path.empty()) return make_error("make_dirs: empty path");
  MOAT_TRY(for_each_path_prefix(path, [mode](std::string_view prefix) -> Status {
    std::string part(prefix);
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) return errno_error("mkdir " + part);
    return ok_status();
  }));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return make_error(path + " exists and is not a directory");
  return ok_status();
}

Status remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return ok_status();
    return errno_error("stat " + path);
  }
  // FTW_PHYS: never follow symlinks; FTW_DEPTH: children before parents;
  // FTW_MOUNT: stay on one filesystem.
  int rc = ::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int type, struct FTW*) -> int {
        int r = (type == FTW_DP) ? ::rmdir(p) : ::unlink(p);
        return (r != 0 && errno != ENOENT) ? -1 : 0;
      },
      32, FTW_PHYS | FTW_DEPTH | FTW_MOUNT);
  if (rc != 0) return errno_error("remove " + path);
  return ok_status();
}

std::string random_id(std::size_t hex_chars) {
  std::string out;
  unsigned char buf[32];
  std::size_t need = (hex_chars + 1) / 2;
  if (need > sizeof(buf)) need = sizeof(buf);
  if (::getrandom(buf, need, 0) != static_cast<ssize_t>(need)) {
    for (std::size_t i = 0; i < need; ++i) buf[i] = static_cast<unsigned char>(std::rand());
  }
  static const char* hex = "0123456789abcdef";
  for (std::size_t i = 0; i < need && out.size() < hex_chars; ++i) {
    out += hex[buf[i] >> 4];
    if (out.size() < hex_chars) out += hex[buf[i] & 15];
  }
  return out;
}

}  // namespace moat::store
