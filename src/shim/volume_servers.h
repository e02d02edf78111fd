// The shim's filesystem servers: one virtio-fs device per volume, each a
// FUSE server over the volume's host directory, reached by QEMU on a unix
// socket in the sandbox directory. They live exactly as long as the VM.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fs/fs_backend.h"
#include "fs/fuse_server.h"
#include "fs/vhost_user_fs.h"
#include "shim_contract/shim_config.h"
#include "util/result.h"
#include "vm/qemu_command.h"

namespace moat::shim {

class VolumeServers {
 public:
  using Logger = std::function<void(const std::string&)>;

  // Opens every volume's directory, listens on its socket and starts serving
  // in a thread; appends the devices QEMU must attach to `shares`. Call
  // before QEMU starts: QEMU connects to the sockets at once.
  static Result<std::unique_ptr<VolumeServers>> start(const std::vector<VolumeShare>& volumes, const std::string& dir,
                                                      std::vector<vm::FsShareSpec>& shares, Logger log);
  // Stops serving and joins the threads.
  ~VolumeServers();

 private:
  struct Volume {
    VolumeShare share;
    std::string socket_path;
    std::unique_ptr<fs::FsBackend> backend;
    std::unique_ptr<fs::FuseServer> server;
    std::unique_ptr<fs::VhostUserFsDevice> device;
    std::thread thread;
  };

  VolumeServers() = default;
  std::vector<std::unique_ptr<Volume>> volumes_;
};

}  // namespace moat::shim
