// The guest's network interface, when the host gave the VM one (moat.net=1):
// the fixed addresses of proto/guest_network.h on its one Ethernet link, set
// over raw rtnetlink, since an image need not ship `ip`.
#pragma once

#include <net/if.h>

#include "util/result.h"

namespace moat::agent {

// What configure_network() could not do, kept in fixed storage: it runs in
// the boot's setup child, which shares the agent's memory but not its thread
// state (system_setup.cpp), where allocating could corrupt the heap. The
// Error, which owns a string, is made by network_error() once it has exited.
struct NetworkFailure {
  const char* step = nullptr;  // nullptr: nothing failed
  const char* object = "";     // what the step acted on, e.g. an address
  int err = 0;
  char interface[IFNAMSIZ] = {};
  char kernel_message[128] = {};  // the kernel's own explanation, if it gave one

  bool failed() const { return step != nullptr; }
};

// Configures the guest's Ethernet interface: IPv6 router advertisements,
// autoconfiguration and duplicate address detection off before the link comes
// up; the guest's IPv4 and IPv6 addresses; MTU and up; default routes via the
// gateways. Allocates nothing (see NetworkFailure).
NetworkFailure configure_network();

// The failure as an Error that says what failed on which interface.
Error network_error(const NetworkFailure& failure);

}  // namespace moat::agent
