// A root directory made for one process: a small read-only tmpfs holding
// only what that process needs, bind-mounted from the host, which the
// process then pivots into (docs/security.md, "QEMU's process").
//
// Built in two halves because the second runs between fork and exec of a
// child of a multi-threaded parent, where only raw system calls are safe:
//   - RootTree (parent): names each entry, checks its source and records the
//     mount flags a read-only bind must keep; prepare() turns it into a
//     PreparedRoot of fixed C strings.
//   - enter_root (child, in a fresh mount namespace, still privileged):
//     makes every mount private, mounts the tmpfs on the mount point, creates
//     and binds each entry in order, pivots into it, detaches the old root
//     and makes the new one read-only. Nothing it mounts is seen outside.
//     Inside a chroot, where the kernel refuses pivot_root, it chroots
//     into the tree instead.
//
// Entry names are relative to the new root ("usr", "dev/null"); a parent
// directory must be added before what it holds. The tree itself is
// read-only, and so is every bind in it but one added as writable (a
// volume's directory, which its server exists to write).
#pragma once

#include <string>
#include <vector>

#include "util/result.h"

namespace moat::jail {

struct PreparedRoot;

enum class EntryKind { kDirectory, kFile, kSymlink, kProc };

class RootTree {
 public:
  // `mount_point`: an existing empty directory the tmpfs is mounted on
  // (inside the child's mount namespace only).
  explicit RootTree(std::string mount_point) : mount_point_(std::move(mount_point)) {}

  void add_directory(const std::string& name);
  // A read-only bind of the host's `source` (file, directory or device
  // node); the entry is created as the same kind.
  Status add_bind(const std::string& name, const std::string& source);
  // A read-write bind of the host directory `source` (never suid or
  // device files through it).
  Status add_writable_bind(const std::string& name, const std::string& source);
  void add_symlink(const std::string& name, const std::string& text);
  // A procfs of the process's own PID namespace showing processes only
  // (subset=pid: no /proc/sys, no sysrq-trigger), read-only; for a process
  // that reaches its own descriptors through /proc/self/fd.
  void add_proc(const std::string& name);
  // Adds `absolute` (and each directory above it) as a read-only bind of
  // the same host path, e.g. a QEMU installed under /opt.
  Status add_bind_at_same_path(const std::string& absolute);

  PreparedRoot prepare() const;

 private:
  struct Entry {
    EntryKind kind;
    std::string name;
    std::string source;            // bind source or symlink text; empty: a plain directory
    unsigned long keep_flags = 0;  // MS_NOSUID, MS_NODEV, ... of the source's mount
    bool writable = false;
  };
  bool has(const std::string& name) const;

  std::string mount_point_;
  std::vector<Entry> entries_;
};

// What enter_root reads: every string built before the fork. Move-only:
// the steps point into `storage`.
struct PreparedRoot {
  PreparedRoot() = default;
  PreparedRoot(PreparedRoot&&) = default;
  PreparedRoot& operator=(PreparedRoot&&) = default;
  PreparedRoot(const PreparedRoot&) = delete;
  PreparedRoot& operator=(const PreparedRoot&) = delete;

  struct Step {
    EntryKind kind = EntryKind::kDirectory;
    const char* target = nullptr;  // absolute, under the mount point
    const char* source = nullptr;  // nullptr: nothing to bind or link
    unsigned long keep_flags = 0;
    bool writable = false;
  };
  std::string mount_point;
  std::vector<std::string> storage;
  std::vector<Step> steps;
};

// For the child, in its own mount namespace with CAP_SYS_ADMIN: builds the
// tree and pivots into it; the process's root and working directory are
// then the tree's root. Async-signal-safe. Returns 0, or an errno with
// `*failed` naming the step (and `*failed_path` its path, if any).
int enter_root(const PreparedRoot& root, const char** failed, const char** failed_path);

}  // namespace moat::jail
