// The container's network as the engine prepared it (linux.namespaces):
// joining the engine's namespace, and the engine's resolv.conf, whose
// nameservers become moat's upstream while the guest keeps asking moat's
// own resolver (so domain rules still see every name).
#pragma once

#include <string>
#include <string_view>

#include "moat/result.h"

namespace moat::oci {

// Moves the calling thread into the network namespace at `path` (a
// /proc/PID/ns/net or a bind-mounted one such as /run/netns/NAME). Every
// process it forks afterwards, the sandbox's shim among them, opens its
// sockets there. Needs CAP_SYS_ADMIN.
Status join_network_namespace(const std::string& path);

// Moves the calling thread into a new, empty network namespace (loopback
// only, down), as runc makes for a namespace listed without a path: what
// the sandbox's shim and the keeper fork afterwards has no network, and an
// engine that joins /proc/KEEPER/ns/net later (a pod's other containers)
// joins this one, not the host's.
Status enter_new_network_namespace();

// The first "nameserver ADDRESS" of a resolv.conf's text, or "".
std::string first_nameserver(std::string_view resolv_conf);

// The engine's resolv.conf (search domains, options) with its nameserver
// lines replaced by the guest's own (those of `guest_resolv_conf`, which
// name moat's resolver).
std::string with_guest_nameservers(std::string_view engine_resolv_conf, std::string_view guest_resolv_conf);

}  // namespace moat::oci
