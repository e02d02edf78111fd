#include "store/sparse_copy.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "util/unique_fd.h"

namespace moat::store {
namespace {

Status copy_range(int in, int out, off_t start, off_t end) {
  off_t in_off = start, out_off = start;
  while (in_off < end) {
    ssize_t n = ::copy_file_range(in, &in_off, out, &out_off, static_cast<std::size_t>(end - in_off), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
      // Fall back to read/write for filesystems that cannot do it in-kernel.
      char buf[1 << 16];
      ssize_t r = ::pread(in, buf, std::min<off_t>(sizeof(buf), end - in_off), in_off);
      if (r <= 0) return errno_error("read during copy");
      if (::pwrite(out, buf, static_cast<std::size_t>(r), out_off) != r) return errno_error("write during copy");
      in_off += r;
      out_off += r;
      continue;
    }
    if (n <= 0) return errno_error("copy_file_range");
  }
  return ok_status();
}

}  // namespace

Status sparse_copy(const std::string& from, const std::string& to) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return errno_error("open " + from);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return errno_error("stat " + from);
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) return errno_error("create " + to);
  if (::ioctl(out.get(), FICLONE, in.get()) == 0) return ok_status();
  if (::ftruncate(out.get(), st.st_size) != 0) return errno_error("truncate " + to);
  off_t pos = 0;
  while (pos < st.st_size) {
    off_t data = ::lseek(in.get(), pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      return errno_error("seek data in " + from);
    }
    off_t hole = ::lseek(in.get(), data, SEEK_HOLE);
    if (hole < 0) hole = st.st_size;
    MOAT_TRY(copy_range(in.get(), out.get(), data, hole));
    pos = hole;
  }
  return ok_status();
}

}  // namespace moat::store
