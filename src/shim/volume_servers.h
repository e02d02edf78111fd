// The shim's filesystem servers: one virtio-fs device per volume, each a
// FUSE server over the volume's host directory in a process of its own
// (shim/volume_server_process.h), reached by QEMU on a connected socket it
// inherits (no path: a jailed QEMU reaches nothing by name). They live
// exactly as long as the VM.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shim_contract/shim_config.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::shim {

class VolumeServers {
 public:
  using Logger = std::function<void(const std::string&)>;

  // QEMU's end of one volume's connection, with the tag the guest mounts.
  struct QemuEnd {
    std::string tag;
    UniqueFd fd;
  };

  // Starts a server process for every volume of the sandbox in
  // `sandbox_dir`, each on one end of a new socket pair; appends QEMU's
  // ends to `qemu_ends` (in the volumes' order). When the shim runs as
  // root each server gets namespaces and a root of its own. A failure ends
  // the servers already started.
  static Result<std::unique_ptr<VolumeServers>> start(const std::vector<VolumeShare>& volumes,
                                                      const std::string& sandbox_dir,
                                                      std::vector<QemuEnd>& qemu_ends, Logger log);
  // What confines the servers, for the shim's log.
  const std::string& confinement() const { return confinement_; }
  // Waits briefly for each server to end (QEMU, gone first, hung up on it),
  // kills those that did not, reaps them all and logs any that failed.
  ~VolumeServers();

 private:
  struct Server {
    std::string host_path;
    pid_t pid = -1;
    UniqueFd pidfd;
  };

  VolumeServers() = default;
  std::vector<Server> servers_;
  std::string confinement_;
  Logger log_;
};

}  // namespace moat::shim
