// Disk snapshots of sandboxes: the writable upper disk of a sandbox's root,
// kept under a name and pinned to the image (or lower disk) it sits on, from
// which new sandboxes boot with exactly that state (docs/snapshots.md).
//
// A snapshot of a running sandbox is consistent: the guest's upper
// filesystem is frozen (flushed, journal empty) for the moment of the copy.
// Volumes and tmpfs mounts are not part of a snapshot.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "moat/result.h"
#include "moat/sandboxes.h"

namespace moat {

struct SnapshotInfo {
  std::string id;
  std::string name;
  std::int64_t created_at = 0;  // unix seconds
  std::map<std::string, std::string> labels;
  // The sandbox it was taken of (which may since have been removed).
  std::string source_id;
  std::string source_name;
  // The root it sits on: an image (reference as the sandbox was made with,
  // and its manifest digest) or, for --rootfs-dir/--rootfs-image roots, the
  // lower disk's path.
  std::string image;
  std::string image_digest;
  std::string lower_path;
  std::uint64_t disk_size_mib = 0;     // the upper filesystem's size
  std::uint64_t allocated_bytes = 0;   // what its disk file takes on the host
  std::string content_digest;          // "sha256:…" of the disk's contents
  std::vector<std::string> command;    // the source's command, the default of sandboxes made from it
  // Sandboxes created from it that still exist (it cannot be removed while
  // there are any).
  std::vector<std::string> used_by;
  // A memory snapshot: the running VM's whole state was saved with the disk,
  // and sandboxes made from it go on from that moment instead of booting.
  bool memory = false;
  int memory_mib = 0;  // a memory snapshot's VM: its RAM and vCPUs, which its children get
  int cpus = 0;
};

struct SnapshotOptions {
  std::map<std::string, std::string> labels;
  // A running sandbox's filesystem is frozen for at most this long while its
  // disk is copied; a copy that takes longer fails (nothing is kept).
  Duration freeze_timeout = std::chrono::seconds(60);
  // Also the running sandbox's memory, devices and vCPUs (QEMU's migration
  // stream), taken while its vCPUs stand still for the moment of the copy.
  // Sandboxes made from it are restored, not booted: processes and what
  // they hold in memory go on, each with its own hostname, fresh entropy
  // and the host's clock. Needs a running sandbox without volumes.
  bool memory = false;
};

// Takes a snapshot of a created, stopped or running sandbox's upper disk.
// Names follow the sandbox name rules and are unique among snapshots.
// Errors: ENOENT (no sandbox), EEXIST (name taken), EINVAL (a root without an
// upper disk: --writable-root), EBUSY (another copy is freezing it).
Result<SnapshotInfo> create_snapshot(const std::string& sandbox, const std::string& name,
                                     const SnapshotOptions& options = {});
Result<std::vector<SnapshotInfo>> list_snapshots();
// By id, unique id prefix or name.
Result<SnapshotInfo> inspect_snapshot(const std::string& id_or_name);
// EBUSY while sandboxes made from it exist.
Status remove_snapshot(const std::string& id_or_name);

struct ForkOptions {
  int count = 1;              // 1 to 64
  std::string name_prefix;    // children are PREFIX-1 … PREFIX-N; default: the source's name + "-fork"
  bool start = true;          // boot the children (in parallel)
  // Warm fork: the running source's VM is saved with its disk (as by
  // SnapshotOptions::memory, without a snapshot left behind), and each
  // child goes on from that moment instead of booting, sharing the saved
  // RAM's pages until it writes them. The children get the source's RAM,
  // vCPUs and network device. Errors: ENOTCONN (the source does not run),
  // EOPNOTSUPP (it has volumes).
  bool memory = false;
};

// A consistent copy of `sandbox`'s root (frozen while copied if it runs)
// booted as `count` new sandboxes with the source's settings. Each child
// has its own disk: their writes are isolated from each other and from the
// source. On an error no child is left behind.
Result<std::vector<SandboxInfo>> fork_sandbox(const std::string& sandbox, const ForkOptions& options = {});

}  // namespace moat
