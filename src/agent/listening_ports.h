// Which TCP ports the guest listens on, for the port watch behind
// --publish-listening (proto/port_watch.h): the sockets in LISTEN of
// /proc/net/tcp and /proc/net/tcp6, except those bound to a loopback
// address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104), which a connection from
// outside the guest could not reach anyway.
#pragma once

#include <string_view>

#include "proto/port_watch.h"

namespace moat::agent {

// The ports of one /proc/net/tcp or /proc/net/tcp6 text; lines that do not
// parse (the header among them) are skipped.
proto::PortSet parse_listening_ports(std::string_view proc_net_tcp);

// This guest's, now (both files; a missing tcp6 is no error).
proto::PortSet read_listening_ports();

}  // namespace moat::agent
