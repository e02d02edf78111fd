// Bytes -> EROFS image -> every reader operation on everything reachable.
// A hostile image must end in error values: no crash, hang, or allocation
// that grows with a size field rather than with the input.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "image/erofs/erofs_reader.h"

namespace {

using moat::image::ErofsDirent;
using moat::image::ErofsNid;
using moat::image::ErofsReader;

// Bounded walk: depth, node count and bytes read per file are capped, so
// directory cycles in the image cannot make it run forever.
void walk(const ErofsReader& r, ErofsNid nid, int depth, int& budget) {
  if (depth > 16 || --budget < 0) return;
  auto ino = r.inode(nid);
  if (!ino.ok()) return;
  (void)r.xattrs(*ino);
  if (ino->is_regular()) {
    char buf[4096];
    for (std::uint64_t off = 0; off < ino->size && off < 65536; off += 3000) {
      (void)r.read(*ino, off, buf, sizeof buf);
    }
  } else if (ino->is_symlink()) {
    (void)r.readlink(*ino);
  } else if (ino->is_dir()) {
    std::vector<std::pair<std::string, ErofsNid>> children;
    (void)r.read_dir(*ino, [&](const ErofsDirent& e) {
      children.emplace_back(std::string(e.name), e.nid);
      return children.size() < 256;
    });
    for (const auto& [name, child] : children) {
      (void)r.lookup(*ino, name);
      if (name != "." && name != "..") walk(r, child, depth + 1, budget);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  int fd = ::memfd_create("erofs", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (size && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return 0;
  }
  auto reader = ErofsReader::from_fd(moat::UniqueFd(fd));
  if (!reader.ok()) return 0;
  int budget = 500;
  walk(*reader, reader->root_nid(), 0, budget);
  (void)reader->lookup_path("/a/b/c");
  return 0;
}
