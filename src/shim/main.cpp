// moat-shim SANDBOX_DIR [--ready-fd N]
// Started (detached) by libmoat; reads SANDBOX_DIR/config.json.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "shim/shim.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: moat-shim SANDBOX_DIR [--ready-fd N]\n");
    return 2;
  }
  std::string dir = argv[1];
  int ready_fd = -1;
  for (int i = 2; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--ready-fd") == 0) ready_fd = std::atoi(argv[i + 1]);
  auto cfg = moat::shim::read_shim_config(moat::shim::config_path(dir));
  if (!cfg) {
    std::fprintf(stderr, "moat-shim: %s\n", cfg.error().message.c_str());
    if (ready_fd >= 0) {
      std::string msg = "error: " + cfg.error().message + "\n";
      ssize_t w = write(ready_fd, msg.data(), msg.size());
      (void)w;
    }
    return 1;
  }
  moat::shim::Shim shim(std::move(*cfg));
  return shim.run(ready_fd);
}
