// moat-shim SANDBOX_DIR [--ready-fd N]
// Started (detached) by libmoat; reads SANDBOX_DIR/config.json.
// moat-shim --volume-server OPTIONS
// Started by the shim itself, once per volume (shim/volume_server_process.h).
// moat-shim --read-root MODE --upper-fd N --lower-fd M
// Started by libmoat to read a sandbox's disks (shim/root_reader_process.h).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "jail/privileges.h"
#include "shim/shim.h"
#include "shim/root_reader_process.h"
#include "shim/volume_server_process.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: moat-shim SANDBOX_DIR [--ready-fd N]\n");
    return 2;
  }
  if (std::strcmp(argv[1], "--volume-server") == 0) {
    auto args = moat::shim::VolumeServerArgs::parse(argc - 2, argv + 2);
    if (!args) {
      std::fprintf(stderr, "moat-shim: %s\n", args.error().message.c_str());
      return 2;
    }
    return moat::shim::run_volume_server(*args);
  }
  if (std::strcmp(argv[1], "--read-root") == 0) return moat::shim::run_root_reader(argc - 2, argv + 2);
  std::string dir = argv[1];
  int ready_fd = -1;
  for (int i = 2; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--ready-fd") == 0) ready_fd = std::atoi(argv[i + 1]);
  // Says why the shim cannot start: on stderr, and to libmoat on the ready fd.
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "moat-shim: %s\n", why.c_str());
    if (ready_fd >= 0) {
      std::string msg = "error: " + why + "\n";
      ssize_t w = write(ready_fd, msg.data(), msg.size());
      (void)w;
    }
    return 1;
  };
  // Before anything secret is read (jail/privileges.h).
  if (int err = moat::jail::seal_process(); err != 0)
    return fail(std::string("sealing the shim's process: ") + std::strerror(err));
  auto cfg = moat::shim::read_shim_config(moat::shim::config_path(dir));
  if (!cfg) return fail(cfg.error().message);
  moat::shim::Shim shim(std::move(*cfg));
  return shim.run(ready_fd);
}
