#include "shim/volume_servers.h"

#include <sys/resource.h>
#include <sys/socket.h>
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
                                                            std::vector<QemuEnd>& qemu_ends, Logger log) {
  std::unique_ptr<VolumeServers> servers(new VolumeServers());
  // Each volume's share of the descriptors, half for the nodes the guest's
  // kernel remembers and half for the files it holds open.
  std::size_t per_volume = volumes.empty() ? 0 : open_node_budget() / volumes.size();
  for (const auto& share : volumes) {
    auto v = std::make_unique<Volume>();
    v->share = share;
    fs::DirBackendOptions options;
    options.read_only = share.read_only;
    options.max_open_nodes = std::max<std::size_t>(per_volume / 2, 16);
    options.max_open_handles = std::max<std::size_t>(per_volume / 2, 16);
    options.size_limit = share.size_bytes;
    auto backend = fs::open_dir_backend(share.host_path, options);
    if (!backend) return backend.error().wrap("volume " + share.host_path);
    v->backend = std::move(*backend);
    v->server = std::make_unique<fs::FuseServer>(*v->backend);
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
      return errno_error("socketpair for volume " + share.host_path);
    UniqueFd shim_end(pair[0]);
    UniqueFd qemu_end(pair[1]);
    auto device = fs::VhostUserFsDevice::adopt(std::move(shim_end), *v->server);
    if (!device) return device.error().wrap("volume " + share.host_path);
    v->device = std::move(*device);
    qemu_ends.push_back({share.tag, std::move(qemu_end)});
    servers->volumes_.push_back(std::move(v));
  }
  // Threads start only once every device is made, so a failure above leaves
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
  }
}

}  // namespace moat::shim
