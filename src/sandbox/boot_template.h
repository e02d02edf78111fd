// Warm start (docs/sandboxes.md, "Warm start"): a new sandbox whose VM
// would be exactly what a fresh boot of its root, kernel and resources
// gives is restored from a template saved right after such a boot, instead
// of booting. The first sandbox of a kind boots and leaves the template;
// every later one restores it, mapping its RAM copy-on-write as a memory
// snapshot's children do (sandbox/memory_snapshot.h), and takes its own
// hostname, entropy and clock at the restore.
//
//   <cache>/templates/<key>/memory.state  the VM's device state (0400)
//   <cache>/templates/<key>/memory.ram    its RAM, sparse (0444)
//   <cache>/templates/<key>/upper.ext4    its upper disk right after boot
//   <cache>/templates/<key>.lock          held while it is made
//
// <cache> is the cache directory ($MOAT_CACHE_DIR, else $MOAT_HOME/cache):
// a template is derived data, so state directories sharing a cache share
// templates. A sandbox gets hard links of the state and RAM (copies when
// the cache is on another filesystem).
//
// <key> digests everything the booted guest depends on: the root's lower
// disk (its path and file identity), root mode and lower filesystem, the
// upper disk's size, the kernel, initramfs and QEMU (path and file
// identity: a rebuilt one is a new key), accelerator, vCPUs, RAM, whether
// there is a network device, and the tmpfs mounts the guest makes at boot.
// What a restore sets anew (hostname, clock, entropy, the network's host
// side) and what only the host side uses (limits, network policy, logs) are
// not in it.
//
// Only a sandbox on a fresh overlay upper can use one: not one made from a
// snapshot or a fork, nor one with volumes, root patches of the caller's, or
// TLS interception (its CA is written into the upper), nor when warm start
// is off (SandboxOptions::warm_start, or $MOAT_WARM_START=0 for a whole
// process). A template that cannot be used is a cold boot, never an error:
// a damaged one, or one another QEMU cannot load, is removed when its
// restore fails and the start boots afresh.
#pragma once

#include <string>

#include "moat/sandbox.h"
#include "sandbox/lifecycle.h"
#include "shim_contract/shim_config.h"

namespace moat::sandbox {

std::string templates_dir(const std::string& home);

// The template key of a sandbox being created, whose VM is `cfg` (its disks
// made); empty when the sandbox cannot use a template.
std::string boot_template_key(const SandboxOptions& o, const SandboxRecord& r, const shim::ShimConfig& cfg,
                              bool root_patched_by_moat);

// For a sandbox being created under `key`: gives it the template's saved VM
// and upper disk when the template exists (its first start restores them),
// or marks it to make the template after its first start. Never fails the
// create: what cannot be given leaves the cold boot it had.
void attach_boot_template(const Manager& m, const std::string& key, const std::string& sandbox_dir);

// What the next start of the sandbox in `dir` does with a template.
bool restores_boot_template(const std::string& dir);
bool makes_boot_template(const std::string& dir);

// After a failed start that restored a template: drops the saved VM the
// sandbox got and the template itself (it did not load), so that the start
// can be tried again, cold. False when the start was not such a restore.
bool drop_failed_boot_template(const Manager& m, const std::string& dir);

// After a start that worked: the template's state is used up, and a state
// saved in the directory later (pause --to-disk) is the sandbox's own, never
// to be taken for the template's.
void boot_template_used(const std::string& dir);

// After a start that failed for good: a later start of the sandbox makes no
// template (its disk is not a fresh boot's any more).
void forget_boot_template(const std::string& dir);

// After the start of a sandbox marked to make its template: saves its
// running VM as the template, once per key (a concurrent maker of the same
// key skips), then prunes the oldest templates beyond the kept count. The
// sandbox runs on either way: a failure is logged, not returned.
void make_boot_template_if_wanted(Manager& m, const std::string& id);

}  // namespace moat::sandbox
