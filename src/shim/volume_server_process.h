// A volume's server as a process of its own (docs/security.md, "Volume
// servers"): the shim's binary run again as
//   moat-shim --volume-server <options>
// with the connected socket QEMU's vhost-user device talks to at fd 3.
//
// Its server parses FUSE requests and vhost-user messages out of guest
// memory, so it is confined the way virtiofsd confines itself, and apart
// from the shim, which holds the sandbox's secrets and its network: a fresh
// process image (exec, not a fork that would copy the shim's memory), and
// when started as root
//   - fresh mount, PID, IPC, UTS and network namespaces, pivoted into a
//     read-only tmpfs holding only `volume` (the volume's directory, bound
//     read-write, or read-only for a read-only volume) and `proc` (a procfs
//     of its own PID namespace, processes only: the backend reaches its
//     files through /proc/self/fd);
//   - uid 0 kept, for files of any owner in a host directory, but no
//     capability except CAP_DAC_OVERRIDE and CAP_FOWNER (not even
//     CAP_DAC_READ_SEARCH: open_by_handle_at would reach any file of the
//     host filesystem, so reopening an evicted node goes by name);
// and in every case no descriptor but the socket and stderr (the shim's
// log), and a seccomp allow-list (shim/syscall_lists.h) once the directory
// is open. It ends when QEMU hangs up.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

namespace moat::shim {

// The descriptor the server's socket is passed at.
inline constexpr int kVolumeServerSocketFd = 3;

struct VolumeServerArgs {
  std::string host_path;   // the volume's directory on the host
  bool read_only = false;
  std::uint64_t size_bytes = 0;  // 0: no limit
  std::uint64_t max_open = 64;   // descriptors for nodes, and as many for open files
  std::string root_mount_point;  // empty: no root of its own (not root)

  std::vector<std::string> to_argv(const std::string& shim_binary) const;
  // From the arguments after "--volume-server".
  static Result<VolumeServerArgs> parse(int argc, char** argv);
};

// The server process's main: sets up, serves, returns the exit status.
int run_volume_server(const VolumeServerArgs& args);

}  // namespace moat::shim
