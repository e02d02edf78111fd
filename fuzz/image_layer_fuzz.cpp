// Bytes -> (maybe compressed) tar stream -> layer applier -> EROFS writer.
// Hostile input must end in an error value, never a crash, hang or leak.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "image/erofs/erofs_writer.h"
#include "image/layers/layer_applier.h"
#include "image/erofs/spool.h"
#include "image/layers/tar_reader.h"

namespace {

moat::image::LayerLimits fuzz_limits() {
  moat::image::LayerLimits limits;
  limits.max_entries = 2000;
  limits.max_content_bytes = 8 << 20;
  limits.max_uncompressed_bytes = 32 << 20;
  return limits;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace moat::image;
  auto spool = Spool::create("/tmp");
  if (!spool.ok()) return 0;
  FsTree tree;
  LayerApplier applier(tree, *spool, fuzz_limits());
  // The input may hold two layers split at the first 0xFF 0x00 0xFF marker, so
  // whiteouts and hardlinks across layers get exercised too.
  std::size_t split = size;
  for (std::size_t i = 0; i + 2 < size; ++i) {
    if (data[i] == 0xFF && data[i + 1] == 0x00 && data[i + 2] == 0xFF) {
      split = i;
      break;
    }
  }
  const std::uint8_t* parts[2] = {data, data + split + 3};
  std::size_t lengths[2] = {split, split + 3 <= size ? size - split - 3 : 0};
  for (int i = 0; i < (split < size ? 2 : 1); ++i) {
    auto reader = TarReader::open_memory(parts[i], lengths[i]);
    if (!reader.ok()) return 0;
    if (!applier.apply(**reader).ok()) return 0;
  }
  int fd = ::memfd_create("fuzz-erofs", MFD_CLOEXEC);
  if (fd < 0) return 0;
  (void)write_erofs(tree, *spool, fd);
  ::close(fd);
  return 0;
}
