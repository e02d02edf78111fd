// The shim's filesystem servers: one virtio-fs device per volume, each a
// FUSE server over the volume's host directory, reached by QEMU on a
// connected socket it inherits (no path: a jailed QEMU reaches nothing by
// name). They live exactly as long as the VM.
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
#include "util/unique_fd.h"
#include "vm/qemu_command.h"

namespace moat::shim {

class VolumeServers {
 public:
  using Logger = std::function<void(const std::string&)>;

  // QEMU's end of one volume's connection, with the tag the guest mounts.
  struct QemuEnd {
    std::string tag;
    UniqueFd fd;
  };

  // Opens every volume's directory, connects a socket pair for its device
  // and starts serving in a thread; appends QEMU's ends to `qemu_ends` (in
  // the volumes' order), for the shim to pass to QEMU.
  static Result<std::unique_ptr<VolumeServers>> start(const std::vector<VolumeShare>& volumes,
                                                      std::vector<QemuEnd>& qemu_ends, Logger log);
  // Stops serving and joins the threads.
  ~VolumeServers();

 private:
  struct Volume {
    VolumeShare share;
    std::unique_ptr<fs::FsBackend> backend;
    std::unique_ptr<fs::FuseServer> server;
    std::unique_ptr<fs::VhostUserFsDevice> device;
    std::thread thread;
  };

  VolumeServers() = default;
  std::vector<std::unique_ptr<Volume>> volumes_;
};

}  // namespace moat::shim
