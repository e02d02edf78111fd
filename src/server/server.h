// `moat serve`: moat's API over HTTP/1.1 and WebSocket (docs/server.md,
// docs/openapi.yaml). One process, no state of its own beyond the commands
// it holds open: the records in $MOAT_HOME are the state, as for the CLI.
#pragma once

#include <cstdint>
#include <string>

#include "moat/result.h"

namespace moat::server {

struct ServeOptions {
  // A unix socket (default $MOAT_HOME/moat.sock, mode 0600), or "HOST:PORT"
  // for TCP, which needs the bearer token of `token_file`.
  std::string unix_socket;
  std::string listen;
  std::string token_file;  // default $MOAT_HOME/server.token (made if absent)
  // PEM certificate chain and private key: the TCP listener speaks TLS.
  std::string tls_cert;
  std::string tls_key;
  bool log_json = false;   // one JSON object per line on stderr
  bool stop_on_exit = false;  // stop the sandboxes this server started when it ends
  std::uint64_t max_body_bytes = 8 << 20;  // whole bodies (JSON); file uploads stream
  std::uint32_t max_connections = 4096;
  std::uint32_t max_in_flight = 256;       // requests being handled at once
  std::uint32_t idle_timeout_s = 60;       // waiting for a request's head (keep-alive included)
  std::uint32_t header_timeout_s = 30;     // a stall while reading a request's body
  // The E2B-compatible API beside moat's own (docs/e2b.md); needs `listen`.
  // `e2b_templates`: the JSON file mapping E2B template ids to images.
  bool e2b = false;
  std::string e2b_templates;
};

// Serves until SIGINT or SIGTERM; then stops taking connections, lets the
// requests in flight finish (at most 10 s) and returns.
Status serve(const ServeOptions& options);

// "GET /v1/sandboxes" lines of every route, for docs/openapi.yaml's check.
std::string route_table();

}  // namespace moat::server
