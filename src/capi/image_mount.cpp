// Serving an image on a host directory through the C ABI (moat/mount.h).
#include "capi/handles.h"
#include "moat/mount.h"

struct moat_mount {
  moat::ImageMount mount;
};

using namespace moat::capi;

extern "C" {

int moat_image_mount(const char* image, const char* dir, unsigned threads, moat_mount** out, moat_error** err) {
  return guarded(err, [&] {
    if (image == nullptr || dir == nullptr || out == nullptr)
      return fail(EINVAL, "mount: an image, a directory and a place for the handle are required", err);
    *out = nullptr;
    moat::MountOptions o;
    o.threads = threads;
    auto m = moat::mount_image(image, dir, o);
    if (!m) return fail(m.error(), err);
    *out = new moat_mount{std::move(*m)};
    return 0;
  });
}

int moat_mount_serve(moat_mount* mount, moat_error** err) {
  return guarded(err, [&] {
    if (mount == nullptr) return fail(EINVAL, "serve: no mount handle", err);
    return done(mount->mount.serve(), err);
  });
}

void moat_mount_free(moat_mount* mount) {
  guarded(nullptr, [&] {
    delete mount;
    return 0;
  });
}

int moat_image_unmount(const char* dir, int lazy, moat_error** err) {
  return guarded(err, [&] {
    if (dir == nullptr) return fail(EINVAL, "unmount: no directory given", err);
    return done(moat::unmount_image(dir, lazy != 0), err);
  });
}

}  // extern "C"
