// moat_virtiofs_serve SOCKET EROFS_IMAGE [REQUEST_QUEUES]: serves an EROFS
// image over vhost-user-fs on SOCKET for one QEMU (tests/fs/virtiofs_boot.sh).
// Exits 0 when QEMU disconnects, 1 on an error, which it prints.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fs/erofs_backend.h"
#include "fs/fuse_server.h"
#include "fs/vhost_user_fs.h"
#include "image/erofs/erofs_reader.h"

int main(int argc, char** argv) {
  using namespace moat;
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: %s SOCKET EROFS_IMAGE [REQUEST_QUEUES]\n", argv[0]);
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  auto reader = image::ErofsReader::open(argv[2]);
  if (!reader.ok()) {
    std::fprintf(stderr, "moat_virtiofs_serve: %s\n", reader.error().message.c_str());
    return 1;
  }
  fs::ErofsBackend backend(std::move(*reader));
  fs::FuseServer server(backend);
  fs::VhostUserFsOptions options;
  if (argc == 4) options.request_queues = static_cast<unsigned>(std::atoi(argv[3]));
  auto device = fs::VhostUserFsDevice::listen(argv[1], server, options);
  if (!device.ok()) {
    std::fprintf(stderr, "moat_virtiofs_serve: %s\n", device.error().message.c_str());
    return 1;
  }
  Status st = (*device)->run();
  if (!st.ok()) {
    std::fprintf(stderr, "moat_virtiofs_serve: %s\n", st.error().message.c_str());
    return 1;
  }
  return 0;
}
