// Output of the VM that the shim copies into a capped log: the guest's serial
// console (a socket QEMU writes to) and QEMU's own stdout/stderr (a pipe).
// QEMU writing straight to files would let the guest fill the host's disk;
// through the shim every byte passes a cap (capped_log.h). If the shim falls
// behind, QEMU's writes wait: the guest is slowed, nothing is buffered.
#pragma once

#include <cstddef>
#include <string>

#include "shim_contract/capped_log.h"
#include "util/unique_fd.h"

namespace moat::shim {

inline constexpr std::size_t kPumpBudget = 256 * 1024;

class OutputPump {
 public:
  OutputPump() = default;
  // `fd` is the shim's end (made non-blocking here); `log` where it goes.
  OutputPump(UniqueFd fd, CappedLog log);

  // The descriptor to poll for input, -1 once the writer has gone.
  int fd() const { return fd_.get(); }

  // Copies what is readable now, at most `budget` bytes so one busy source
  // cannot keep the shim's loop from its other work; returns how much.
  std::size_t pump(std::size_t budget = kPumpBudget);
  // Copies everything until the writer's end is closed or nothing is left
  // (QEMU has exited: what it wrote last explains why).
  void drain();

 private:
  UniqueFd fd_;
  CappedLog log_;
};

}  // namespace moat::shim
