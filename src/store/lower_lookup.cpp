#include "store/lower_lookup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "store/guest_path.h"
#include "util/unique_fd.h"

namespace moat::store {
namespace {

LowerEntry entry_from_stat(const struct stat& st) {
  return LowerEntry{static_cast<std::uint32_t>(st.st_mode), st.st_uid, st.st_gid,
                    static_cast<std::int64_t>(st.st_mtim.tv_sec)};
}

// Missing names and names below a non-directory (ENOTDIR) or a symlink
// (ELOOP from O_NOFOLLOW) are "nothing there"; anything else is an error.
bool means_absent(int err) { return err == ENOENT || err == ENOTDIR || err == ELOOP; }

Result<std::optional<LowerEntry>> lookup_below(int root_fd, const std::string& root,
                                              const std::string& guest_path) {
  MOAT_ASSIGN_OR_RETURN(std::vector<std::string> names, split_guest_path(guest_path));
  struct stat st {};
  if (names.empty()) {
    if (::fstat(root_fd, &st) != 0) return errno_error("stat " + root);
    return std::optional<LowerEntry>(entry_from_stat(st));
  }
  UniqueFd held;  // the current directory when below the root
  int dir = root_fd;
  for (std::size_t i = 0; i + 1 < names.size(); ++i) {
    int fd = ::openat(dir, names[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (means_absent(errno)) return std::optional<LowerEntry>();
      return errno_error("open " + root + join_guest_path(names, i + 1));
    }
    held.reset(fd);
    dir = fd;
  }
  if (::fstatat(dir, names.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (means_absent(errno)) return std::optional<LowerEntry>();
    return errno_error("stat " + root + guest_path);
  }
  return std::optional<LowerEntry>(entry_from_stat(st));
}

}  // namespace

LowerLookup empty_lower_lookup() {
  return [](const std::string&) -> Result<std::optional<LowerEntry>> { return std::optional<LowerEntry>(); };
}

Result<LowerLookup> lower_lookup_from_directory(const std::string& root) {
  int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_error("open lower directory " + root);
  auto root_fd = std::make_shared<UniqueFd>(fd);
  return LowerLookup([root_fd, root](const std::string& guest_path) {
    return lookup_below(root_fd->get(), root, guest_path);
  });
}

}  // namespace moat::store
