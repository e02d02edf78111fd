#include "shim/output_pump.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace moat::shim {

OutputPump::OutputPump(UniqueFd fd, CappedLog log) : fd_(std::move(fd)), log_(std::move(log)) {
  if (fd_) ::fcntl(fd_.get(), F_SETFL, ::fcntl(fd_.get(), F_GETFL) | O_NONBLOCK);
}

std::size_t OutputPump::pump(std::size_t budget) {
  char buf[65536];
  std::size_t done = 0;
  while (fd_ && done < budget) {
    ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return done;
    if (n <= 0) {
      fd_.reset();  // the writer is gone (or the descriptor broke): stop polling it
      return done;
    }
    log_.write(std::string_view(buf, static_cast<std::size_t>(n)));
    done += static_cast<std::size_t>(n);
  }
  return done;
}

void OutputPump::drain() {
  // Bounded: a writer that lives on cannot hold the shim here, and the log
  // keeps only its cap's worth anyway.
  for (int i = 0; i < 64 && fd_; ++i)
    if (pump() < kPumpBudget) return;
}

}  // namespace moat::shim
