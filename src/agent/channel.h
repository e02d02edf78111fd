// Finds and opens the virtio-serial port the host named for the protocol.
#pragma once

#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::agent {

// Looks up /sys/class/virtio-ports/*/name == port_name and opens the matching
// /dev/<port> read-write. Waits up to `timeout_ms` for the device to appear.
Result<UniqueFd> open_virtio_port(const std::string& port_name, int timeout_ms);

}  // namespace moat::agent
