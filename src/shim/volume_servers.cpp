#include "shim/volume_servers.h"

#include <unistd.h>

#include "fs/dir_backend.h"

namespace moat::shim {

Result<std::unique_ptr<VolumeServers>> VolumeServers::start(const std::vector<VolumeShare>& volumes,
                                                            const std::string& dir,
                                                            std::vector<vm::FsShareSpec>& shares, Logger log) {
  std::unique_ptr<VolumeServers> servers(new VolumeServers());
  for (const auto& share : volumes) {
    auto v = std::make_unique<Volume>();
    v->share = share;
    v->socket_path = volume_socket_path(dir, share.tag);
    auto backend = fs::open_dir_backend(share.host_path, fs::DirBackendOptions{share.read_only});
    if (!backend) return backend.error().wrap("volume " + share.host_path);
    v->backend = std::move(*backend);
    v->server = std::make_unique<fs::FuseServer>(*v->backend);
    auto device = fs::VhostUserFsDevice::listen(v->socket_path, *v->server);
    if (!device) return device.error().wrap("volume " + share.host_path);
    v->device = std::move(*device);
    shares.push_back({share.tag, v->socket_path});
    servers->volumes_.push_back(std::move(v));
  }
  // Threads start only once every socket listens, so a failure above leaves
  // nothing running.
  for (auto& v : servers->volumes_) {
    Volume* raw = v.get();
    raw->thread = std::thread([raw, log] {
      if (auto st = raw->device->run(); !st) log("volume " + raw->share.host_path + ": " + st.error().message);
    });
  }
  return servers;
}

VolumeServers::~VolumeServers() {
  for (auto& v : volumes_) v->device->stop();
  for (auto& v : volumes_) {
    if (v->thread.joinable()) v->thread.join();
    ::unlink(v->socket_path.c_str());
  }
}

}  // namespace moat::shim
