// An OCI bundle's config.json (runtime-spec 1.x) as moat-runtime applies it
// to a sandbox. The engine writes the file, but it carries what the user of
// the engine asked for (and, in a cluster, what any pod spec says), so it is
// read as untrusted: its size is bounded, every field is type-checked, and a
// field moat cannot honour is named in `unsupported` rather than dropped
// without a word (the caller logs them).
//
// What each field becomes (docs/oci-runtime.md has the full table):
//   process.args/env/cwd/user.uid+gid/terminal/rlimits -> the exec of the
//       container's process in the guest
//   root.path (relative to the bundle) -> the root served over virtio-fs
//   hostname -> the sandbox's hostname
//   mounts: bind of a directory -> a virtio-fs volume; bind of a file -> its
//       bytes copied in at create; tmpfs -> a guest tmpfs; proc, sysfs,
//       devpts, mqueue, cgroup and the tmpfs at /dev, /dev/shm, /run, /tmp
//       -> the guest's own
//   linux.resources.memory.limit -> VM memory; cpu quota/period -> vCPUs
//   annotations io.moat.memory (MiB), io.moat.cpus -> the same, explicitly
//   linux.namespaces network: none -> moat's network from the host's
//       namespace; a fresh one (no path) -> no network; the engine's (a
//       path) -> the sandbox's shim opens its sockets in it
//   annotations io.moat.network[.allow|.deny|.publish|.dns|
//       .publish-listening] -> the sandbox's network policy (docs/network.md's
//       forms); in the engine's namespace every port the guest listens on
//       is published there unless .publish-listening says otherwise
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "moat/exec.h"
#include "moat/network.h"
#include "moat/result.h"

namespace moat::oci {

// config.json is a few KiB in practice; 4 MiB leaves room for large
// annotations and environments.
inline constexpr std::size_t kMaxConfigBytes = 4u << 20;

// How the container's process runs (the spec's "process", or an exec's
// process.json, which has the same form).
struct ProcessSpec {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  bool terminal = false;
  std::uint16_t rows = 24, cols = 80;  // process.consoleSize
  std::map<std::string, Rlimit> rlimits;  // "nofile", "nproc", ...
  std::optional<CapabilitySets> capabilities;
  bool no_new_privileges = false;
};

struct BindMount {
  std::string source;  // absolute host path
  std::string destination;
  bool read_only = false;
  bool is_file = false;  // copied in at create instead of served
};

struct TmpfsSpec {
  std::string destination;
  std::uint64_t size_bytes = 0;
};

// linux.namespaces' network entry.
enum class NetworkNamespace {
  kHost,   // none listed: runc leaves the container in the host's
  kFresh,  // listed without a path: a new, empty one (no network)
  kJoin,   // listed with a path: the engine's (a pod's), to join
};

struct BundleConfig {
  std::string oci_version;
  ProcessSpec process;
  std::string rootfs;  // absolute
  bool root_readonly = false;
  std::string hostname;
  std::vector<BindMount> binds;
  std::vector<TmpfsSpec> tmpfs;
  int memory_mib = 0;  // 0: moat's default
  int cpus = 0;        // 0: moat's default
  // A pod's sandbox ("pause") container, by the CRI's annotation: it runs
  // nothing of the pod's and only holds the pod's namespaces, so moat holds
  // them with its keeper and boots no VM for it.
  bool pod_sandbox = false;
  NetworkNamespace network_namespace = NetworkNamespace::kHost;
  std::string network_namespace_path;  // kJoin
  // From the io.moat.network* annotations; the mode is unset unless
  // io.moat.network gives it (then it follows network_namespace).
  std::optional<NetworkMode> network_mode;
  NetworkOptions network;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> unsupported;  // "field: why", for the log
};

// Reads <bundle>/config.json. `bundle` must be absolute.
Result<BundleConfig> read_bundle_config(const std::string& bundle);
// The same from the file's bytes (bind sources are still looked at on the
// host: a file is copied, a directory shared).
Result<BundleConfig> parse_bundle_config(std::string_view text, const std::string& bundle);

// `update --resources`: a LinuxResources object (config.json's
// linux.resources), read as create reads it.
struct ResourceUpdate {
  int memory_mib = 0;  // 0: not asked
  int cpus = 0;        // 0: not asked
  std::vector<std::string> unsupported;
};
Result<ResourceUpdate> parse_resource_update(std::string_view text);

// Parses a process object (config.json's "process", or the whole of an exec's
// --process file). Fields moat cannot honour are appended to `unsupported`.
Result<ProcessSpec> parse_process(const std::string& json_text, std::vector<std::string>& unsupported);

}  // namespace moat::oci
