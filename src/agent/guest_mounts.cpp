#include "agent/guest_mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "util/path_names.h"

namespace moat::agent {
namespace {

std::size_t depth(const std::string& path) { return static_cast<std::size_t>(std::count(path.begin(), path.end(), '/')); }

Status make_mount_point(const std::string& path) {
  return for_each_path_prefix(path, [](std::string_view prefix) -> Status {
    std::string at(prefix);
    if (::mkdir(at.c_str(), 0755) != 0 && errno != EEXIST) return errno_error("create mount point " + at);
    return ok_status();
  });
}

// A FUSE mount starts with the kernel's default readahead of 128 KiB (INIT
// can only lower it), so a sequential read costs a device round trip per
// 128 KiB. The device takes 1 MiB per request: let readahead ask for that.
// Best effort: a kernel without the knob still reads correctly.
void widen_readahead(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  std::string knob = "/sys/class/bdi/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev)) +
                     "/read_ahead_kb";
  int fd = ::open(knob.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = ::write(fd, "1024", 4);
  (void)n;
  ::close(fd);
}

Status mount_one(const proto::GuestMount& m) {
  MOAT_TRY(make_mount_point(m.path));
  unsigned long flags = m.read_only ? MS_RDONLY : 0;
  if (m.kind == proto::GuestMount::Kind::kVirtiofs) {
    if (::mount(m.tag.c_str(), m.path.c_str(), "virtiofs", flags, nullptr) != 0)
      return errno_error("mount volume " + m.tag + " on " + m.path);
    widen_readahead(m.path);
    return ok_status();
  }
  std::string data = "mode=1777";
  if (m.size_bytes) data += ",size=" + std::to_string(m.size_bytes);
  if (::mount("tmpfs", m.path.c_str(), "tmpfs", flags | MS_NOSUID | MS_NODEV, data.c_str()) != 0)
    return errno_error("mount tmpfs on " + m.path);
  return ok_status();
}

}  // namespace

Status mount_sandbox_filesystems(const std::vector<proto::GuestMount>& mounts) {
  std::vector<proto::GuestMount> ordered = mounts;
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto& a, const auto& b) { return depth(a.path) < depth(b.path); });
  for (const auto& m : ordered) MOAT_TRY(mount_one(m));
  return ok_status();
}

}  // namespace moat::agent
