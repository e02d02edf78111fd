#include "jail/uid_lease.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace moat::jail {
namespace {

Status make_lock_dir(const std::string& dir) {
  std::string partial;
  for (std::size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    partial = slash == std::string::npos ? dir : dir.substr(0, slash);
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) return errno_error("mkdir " + partial);
    if (slash == std::string::npos) break;
  }
  // Only root may create or remove the locks: a lock file someone else
  // made could be held forever to exhaust the range.
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return errno_error("stat " + dir);
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022) != 0)
    return make_error(dir + " must be a directory of " + std::to_string(::geteuid()) +
                          " that nobody else can write",
                      EPERM);
  return ok_status();
}

}  // namespace

Result<UidLease> UidLease::acquire(const std::string& lock_dir, std::uint32_t first, std::uint32_t count) {
  MOAT_TRY(make_lock_dir(lock_dir));
  // Lowest first: the directory holds as many files as sandboxes ever ran
  // at once, not one per sandbox ever run.
  for (std::uint32_t i = 0; i < count; ++i) {
    uid_t uid = first + i;
    std::string path = lock_dir + "/" + std::to_string(uid);
    int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return errno_error("open " + path);
    UniqueFd lock(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      UidLease lease;
      lease.lock_ = std::move(lock);
      lease.uid_ = uid;
      return lease;
    }
    if (errno != EWOULDBLOCK) return errno_error("flock " + path);
  }
  return make_error("every jail uid in " + std::to_string(first) + ".." + std::to_string(first + count - 1) +
                        " is held by a running sandbox",
                    EAGAIN);
}

}  // namespace moat::jail
