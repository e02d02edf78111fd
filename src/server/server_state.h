// What the server's handlers share: the route table, open handles and
// commands, the idempotency keys and the counters /metrics shows.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "server/exec_registry.h"
#include "server/handle_pool.h"
#include "server/idempotency_cache.h"
#include "server/router.h"
#include "server/server.h"

namespace moat::server {

namespace e2b {
class E2bService;
}

struct ServerCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> responses_4xx{0};
  std::atomic<std::uint64_t> responses_5xx{0};
  std::atomic<std::uint64_t> connections{0};       // open now
  std::atomic<std::uint64_t> connections_shed{0};  // refused: too many
  std::atomic<std::uint64_t> in_flight{0};
  std::atomic<std::uint64_t> execs_started{0};
  std::atomic<std::uint64_t> attaches{0};          // WebSockets open now
  std::atomic<std::uint64_t> tls_handshake_failures{0};
};

struct ServerState {
  ServeOptions options;
  Router router;
  HandlePool handles;
  ExecRegistry execs;
  IdempotencyCache idempotency;
  ServerCounters counters;
  // The E2B front end when `moat serve --e2b` (its routes use it).
  std::shared_ptr<e2b::E2bService> e2b;

  // Sandboxes this server booted, for --stop-on-exit.
  std::mutex started_mu;
  std::set<std::string> started;
  void note_started(const std::string& id) {
    std::lock_guard lock(started_mu);
    started.insert(id);
  }
};

// Each area adds its routes (one file each).
void add_sandbox_routes(ServerState& state);
void add_exec_routes(ServerState& state);
void add_file_routes(ServerState& state);
void add_image_routes(ServerState& state);
void add_volume_routes(ServerState& state);
void add_snapshot_routes(ServerState& state);
void add_root_routes(ServerState& state);
void add_system_routes(ServerState& state);  // health, version, events, metrics

}  // namespace moat::server
