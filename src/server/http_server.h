// The server's connections (Boost.Beast over Asio): listening, HTTP/1.1
// requests read with bounded heads and bodies, authentication, routing,
// handlers run on threads of their own, responses whole or streamed, and
// WebSocket upgrades. The only part of the server that sees Boost.
//
// Threads: one runs every socket (Asio's event loop, no locks needed for
// connection state); each request's handler runs on a thread of its own
// (they call moat's blocking API: booting a sandbox takes seconds), as does
// each streamed body's producer. Between them are pipes (bodies) and
// bounded queues (WebSocket messages): a slow side holds the other back, so
// memory stays bounded whatever a client does.
#pragma once

#include <functional>
#include <string>

#include "moat/result.h"
#include "server/server_state.h"

namespace moat::server {

struct Listener {
  std::string unix_path;    // or:
  std::string tcp_address;  // "127.0.0.1:8080", "[::1]:8080"
  std::string token;        // required of TCP clients
  // PEM files: TCP connections are TLS (1.2 or later) when both are set.
  std::string tls_cert;
  std::string tls_key;
};

// Serves `listener` until SIGINT/SIGTERM; then stops accepting and waits (at
// most 10 s) for the requests in flight. `on_ready` runs once listening.
Status run_http_server(ServerState& state, const Listener& listener, const std::function<void()>& on_ready);

}  // namespace moat::server
