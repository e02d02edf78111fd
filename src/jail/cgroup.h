// A control group of one's own for a process moat starts (docs/security.md,
// "QEMU's process"): its memory, task count and CPU bounded by the host
// kernel, whatever the guest makes QEMU do.
//
// The group is made beneath the creating process's own group, so limits
// set on moat from outside (a service, a container) still hold above it:
//   - cgroup v2 (one hierarchy, `cgroup2` mounted): `<group>/<name>`, after
//     enabling memory, pids and cpu for the children of `<group>`. The
//     kernel allows that only in the root group or a group without
//     processes; anywhere else the error says so (run moat in a delegated
//     group, e.g. `systemd-run --scope -p Delegate=yes`).
//   - cgroup v1 (a hierarchy per controller, as this project's CI host
//     has): `<memory group>/<name>`, `<pids group>/<name>` and
//     `<cpu group>/<name>`.
// With an I/O weight, the io controller (v2) or `<blkio group>/<name>` (v1)
// as well.
// A process joins by writing "0" to each of procs_fds() (what a child does
// between fork and exec, with raw system calls only). The groups are
// removed on destruction, which succeeds once every member has exited.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::jail {

struct CgroupLimits {
  std::uint64_t memory_bytes = 0;  // 0: no limit
  std::uint64_t pids = 0;          // 0: no limit
  std::uint32_t cpu_millis = 0;    // CPU time per second of wall time, in ms per CPU (1000 = one CPU); 0: none
  std::uint32_t cpu_weight = 0;    // share when CPUs are contended, 1-10000 as v2's cpu.weight (v1: cpu.shares
                                   // = weight * 1024 / 100); 0: the kernel's default
  std::uint32_t io_weight = 0;     // share of the disks when contended, 1-10000 as v2's io.weight (BFQ's files take
                                   // 1-1000); 0: the kernel's default. ENOTSUP where the kernel has no weight
};

enum class CgroupVersion { kV1, kV2 };

class Cgroup {
 public:
  Cgroup() = default;
  Cgroup(Cgroup&&) noexcept;
  Cgroup& operator=(Cgroup&&) noexcept;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  ~Cgroup();

  // Creates `name` (one path component) beneath the caller's own group and
  // sets `limits`. A group of that name left by an earlier run that ended
  // without removing it is removed first when empty; a group with members
  // is an error (EBUSY).
  static Result<Cgroup> create(const std::string& name, const CgroupLimits& limits);

  CgroupVersion version() const { return version_; }
  // The group's directories: one under v2, one per controller under v1.
  const std::vector<std::string>& paths() const { return paths_; }
  // Open `cgroup.procs` of each directory, for a child to join.
  std::vector<int> procs_fds() const;

  // How many times the kernel's OOM killer has killed a member for going
  // over the memory limit; 0 when it cannot tell.
  std::uint64_t oom_kills() const;
  std::uint64_t memory_limit() const { return memory_limit_; }
  std::uint64_t pids_limit() const { return pids_limit_; }

  // What the members use now: memory charged (v1 memory.usage_in_bytes, v2
  // memory.current) and tasks (pids.current); 0 where it cannot tell.
  std::uint64_t memory_used() const;
  std::uint64_t tasks() const;

  // Removes the directories now (what the destructor does); an error when
  // a member is still alive.
  Status remove();

 private:
  // The directory of `controller` ("memory", "pids", "cpu", "blkio"/"io").
  const std::string& path_of(const char* controller) const;

  CgroupVersion version_ = CgroupVersion::kV2;
  std::vector<std::string> paths_;
  std::vector<UniqueFd> procs_;
  std::uint64_t memory_limit_ = 0;
  std::uint64_t pids_limit_ = 0;
};

// Removes the group `name` that Cgroup::create would make from here: what
// is left when the process holding the Cgroup was killed. No group: ok.
Status remove_cgroup(const std::string& name);

// The file that holds the I/O weight of the group `dir` and the value
// written there for `weight` (1-10000, as v2's io.weight). Weights are
// proportional only under the BFQ scheduler (io.bfq.weight, v1
// blkio.bfq.weight: 1-1000, clamped), v2's io.cost (io.weight) or v1's CFQ
// (blkio.weight: 10-1000, clamped); ENOTSUP, saying so, where the kernel
// offers none of them.
Result<std::pair<std::string, std::string>> io_weight_setting(CgroupVersion version, const std::string& dir,
                                                            std::uint32_t weight);

// What the group will allow, as `moat doctor` and the shim's log say it.
std::string describe(CgroupVersion version);

}  // namespace moat::jail
