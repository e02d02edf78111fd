// Freezes the writable upper filesystem (FIFREEZE) while the host copies its
// disk, so the copy is a clean filesystem of one moment: ext4's freeze
// flushes the journal and clears its needs-recovery flag, and QEMU has
// completed every write the guest waited for.
//
// The freeze is held by a child process, not by the agent's loop: anything
// that writes to a frozen filesystem blocks in the kernel, and that includes
// the agent's own file server. If the loop blocked with the freeze in its
// hands, nothing would thaw the guest. The child thaws when told to, when the
// time limit passes, or when the agent goes away, whichever is first, and
// says which.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::agent {

class DiskFreezer {
 public:
  DiskFreezer() = default;
  DiskFreezer(const DiskFreezer&) = delete;
  DiskFreezer& operator=(const DiskFreezer&) = delete;
  ~DiskFreezer();

  // Freezes the filesystem of `fs_handle` (an O_PATH directory handle) for at
  // most `limit`, on behalf of `stream`. Returns once it is frozen. EBUSY
  // while another freeze is held; ENODEV without a writable upper.
  Status freeze(int fs_handle, std::uint32_t stream, std::chrono::milliseconds limit);

  // Thaws. True when the freeze held until now; false when the limit passed
  // first (the child had already thawed).
  Result<bool> thaw();

  // The stream holding the freeze, if any.
  std::optional<std::uint32_t> holder() const { return holder_; }

  // The agent's loop reaps every child with waitpid(-1); it tells the freezer
  // when the one it reaped was the freezer's, so the pid is not waited for
  // again (by then it may name another process).
  bool owns(pid_t pid) const { return child_ > 0 && pid == child_; }
  void on_reaped() { reaped_ = true; }

 private:
  void reap();

  std::optional<std::uint32_t> holder_;
  pid_t child_ = -1;
  bool reaped_ = false;
  UniqueFd command_;  // agent -> child: any byte, or closing it, thaws
  UniqueFd status_;   // child -> agent: 'F' frozen, then 'T' thawed as told or 'E' expired
};

}  // namespace moat::agent
