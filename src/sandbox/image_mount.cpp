// moat::mount_image (include/moat/mount.h): the image resolver, the EROFS
// reader and the FUSE server put together.
#include "moat/mount.h"

#include <algorithm>
#include <optional>
#include <thread>

#include "fs/erofs_backend.h"
#include "fs/fuse_mount.h"
#include "fs/fuse_server.h"
#include "fs/fuse_transport.h"
#include "image/erofs/erofs_reader.h"
#include "moat/images.h"
#include "util/unique_fd.h"

namespace moat {

struct ImageMount::Impl {
  std::string dir;
  std::string image_file;
  std::optional<fs::ErofsBackend> backend;
  UniqueFd fuse;
  unsigned threads = 0;
};

ImageMount::ImageMount(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ImageMount::ImageMount(ImageMount&&) noexcept = default;
ImageMount& ImageMount::operator=(ImageMount&&) noexcept = default;
ImageMount::~ImageMount() = default;

const std::string& ImageMount::dir() const { return impl_->dir; }
const std::string& ImageMount::image_file() const { return impl_->image_file; }

Status ImageMount::serve() {
  fs::FuseServer server(*impl_->backend);
  fs::DevFuseTransport transport(impl_->fuse.get());
  return fs::serve(server, transport, impl_->threads);
}

Result<ImageMount> mount_image(const std::string& image, const std::string& dir, const MountOptions& options) {
  if (options.threads > 64) return make_error("mount: at most 64 threads", EINVAL);
  auto m = std::make_unique<ImageMount::Impl>();
  m->dir = dir;
  MOAT_ASSIGN_OR_RETURN(m->image_file, image_root_file(image));
  MOAT_ASSIGN_OR_RETURN(auto reader, image::ErofsReader::open(m->image_file));
  m->backend.emplace(std::move(reader));
  m->threads = options.threads ? options.threads : std::clamp(std::thread::hardware_concurrency(), 2u, 8u);
  fs::FuseMountOptions fo;
  fo.source = m->image_file;
  MOAT_ASSIGN_OR_RETURN(m->fuse, fs::fuse_mount(dir, fo));
  return ImageMount(std::move(m));
}

Status unmount_image(const std::string& dir, bool lazy) { return fs::fuse_unmount(dir, lazy); }

}  // namespace moat
