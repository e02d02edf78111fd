#include "shim/volume_servers.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

#include "fs/dir_backend.h"

namespace moat::shim {

namespace {

// Descriptors the shim keeps for itself (QEMU's pipes, clients, logs, the
// devices' sockets and eventfds) beyond those the volumes' nodes hold.
constexpr rlim_t kReservedFds = 512;

// How many host files all volumes together may hold open for their nodes:
// the descriptor limit, raised to its hard maximum first, less the shim's own
// reserve. Past it a volume closes the descriptors of its least recently used
// nodes and reopens them when the guest comes back to them (fs/node_table.h),
// so a guest may remember many more files than that; the shim keeps working.
std::size_t open_node_budget() {
  struct rlimit lim {};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    struct rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  rlim_t usable = lim.rlim_cur == RLIM_INFINITY ? (rlim_t{1} << 20) : lim.rlim_cur;
  return usable > 2 * kReservedFds ? static_cast<std::size_t>(usable - kReservedFds)
                                    : static_cast<std::size_t>(usable / 2);
}

}  // namespace

Result<std::unique_ptr<VolumeServers>> VolumeServers::start(const std::vector<VolumeShare>& volumes,
                                                            const std::string& dir,
                                                            std::vector<vm::FsShareSpec>& shares, Logger log) {
  std::unique_ptr<VolumeServers> servers(new VolumeServers());
  // Each volume's share of the descriptors, half for the nodes the guest's
  // kernel remembers and half for the files it holds open.
  std::size_t per_volume = volumes.empty() ? 0 : open_node_budget() / volumes.size();
  for (const auto& share : volumes) {
    auto v = std::make_unique<Volume>();
    v->share = share;
    v->socket_path = volume_socket_path(dir, share.tag);
    fs::DirBackendOptions options;
    options.read_only = share.read_only;
    options.max_open_nodes = std::max<std::size_t>(per_volume / 2, 16);
    options.max_open_handles = std::max<std::size_t>(per_volume / 2, 16);
    options.size_limit = share.size_bytes;
    auto backend = fs::open_dir_backend(share.host_path, options);
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
