// An image's root mounted read-only on the host (`moat image mount`), served
// by moat's own FUSE server from the image's EROFS file: look inside an image
// without a VM.
//
//   auto m = moat::mount_image("127.0.0.1:5000/app:latest", "/mnt/app");
//   m->serve();                        // until `moat image umount /mnt/app`
#pragma once

#include <memory>
#include <string>

#include "moat/result.h"

namespace moat {

struct MountOptions {
  unsigned threads = 0;  // serving threads; 0: the CPUs, at least 2, at most 8
};

// A mount whose requests this process answers. The mount exists once
// mount_image returns, but answers only while serve() runs; destroying the
// handle does not unmount (unmount_image does).
class ImageMount {
 public:
  ImageMount(ImageMount&&) noexcept;
  ImageMount& operator=(ImageMount&&) noexcept;
  ~ImageMount();

  const std::string& dir() const;
  const std::string& image_file() const;  // the EROFS file served
  // Answers the kernel's requests on this and worker threads until the
  // filesystem is unmounted. A process may fork after mount_image and serve
  // in the child (the CLI's background mount).
  Status serve();

  struct Impl;
  explicit ImageMount(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// Mounts `image` (an EROFS file path, a pulled reference, a digest or an
// image id, as images.h resolves them) at the existing directory `dir`.
Result<ImageMount> mount_image(const std::string& image, const std::string& dir, const MountOptions& options = {});

// Unmounts a directory mounted by mount_image; `lazy` detaches it now even
// while it is busy.
Status unmount_image(const std::string& dir, bool lazy = false);

}  // namespace moat
