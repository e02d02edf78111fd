// The guest's virtio-fs mounts (volumes, and the root when it is a host
// directory), which a quick stop (proto/message.h: halt) flushes before the
// VM is killed: without a writeback cache a write() reaches the host before
// it returns, but pages dirtied through a shared mmap sit in the guest's
// page cache until written back, and would die with the VM.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moat::agent {

// The mount points of the virtio-fs entries of a /proc/self/mounts text,
// with the kernel's octal escapes (\040 for a space, \011, \012, \134)
// undone. Lines that do not parse are skipped.
std::vector<std::string> virtiofs_mount_points(std::string_view proc_mounts);

// syncfs() on each virtio-fs mount of this guest, now; how many could not
// be flushed (opened or synced).
int sync_shared_filesystems();

}  // namespace moat::agent
