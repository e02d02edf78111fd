// The E2B-compatible front end of `moat serve --e2b` (docs/e2b.md): E2B's
// control plane (/sandboxes, /v2/sandboxes) and, for every sandbox, what its
// envd serves (Connect services process.Process and filesystem.Filesystem,
// REST /files, /health, /envs), on moat's public API like every front end.
// The SDK is pointed here with E2B_API_URL and E2B_SANDBOX_URL (one URL
// for all sandboxes: envd requests name theirs in E2b-Sandbox-Id).
//
// Credentials: the control plane takes the server's bearer token as
// X-API-Key; each sandbox's envd calls take the access token its create
// answered (X-Access-Token), so one sandbox's client cannot reach another.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "moat/result.h"
#include "server/e2b/connect_protocol.h"
#include "server/e2b/dir_state.h"
#include "server/e2b/guest_users.h"
#include "server/e2b/process_table.h"
#include "server/e2b/sandbox_table.h"
#include "server/e2b/templates.h"
#include "server/handle_pool.h"
#include "server/http_types.h"

namespace moat::server {
struct ServerState;
}

namespace moat::server::e2b {

// The envd version the SDKs are told: the features they gate on it that
// this front end serves (stdin control 0.3, default user 0.4, CloseStdin
// 0.5.2, octet-stream uploads 0.5.7) and none it does not (file metadata
// 0.6.2, watch entries 0.6.3).
inline constexpr const char* kEnvdVersion = "0.5.7";
inline constexpr int kDefaultTimeoutS = 300;
inline constexpr int kMaxTimeoutS = 86400;

// An envd request's sandbox and the user it acts as.
struct EnvdCall {
  E2bSandbox sandbox;
  GuestUser user;
  GuestUsers users;
};

class E2bService : public std::enable_shared_from_this<E2bService> {
 public:
  E2bService(TemplateMap templates, std::string api_key);
  ~E2bService();
  E2bService(const E2bService&) = delete;
  E2bService& operator=(const E2bService&) = delete;

  // Takes up the records an earlier server left in `dir` (those whose moat
  // sandbox still runs; the others are dropped) and keeps every change there
  // from now on.
  Status keep_records_in(const std::string& dir);

  // The control plane's check of X-API-Key; an answer to send when it fails.
  std::optional<Response> check_api_key(const Request& req) const;
  // The sandbox of an envd call (E2b-Sandbox-Id, X-Access-Token) and its
  // user (Authorization: Basic NAME:, else the template's).
  Result<EnvdCall> envd_call(const Request& req, ConnectError& refusal);
  // The guest's accounts, read once per sandbox (again when a name is missing).
  Result<GuestUsers> users_of(const std::string& id, bool refresh = false);

  // A directory and its missing parents, owned by the call's user.
  Status make_dirs_as(const EnvdCall& call, const std::string& path);
  // Stops and removes a sandbox and drops what the front end held for it.
  Status kill(const std::string& id);
  void forget(const std::string& id);

  TemplateMap templates;
  SandboxTable sandboxes;
  std::shared_ptr<ProcessTable> processes = std::make_shared<ProcessTable>();
  PolledWatchers watchers;
  // Its own pool, so that streams still running when the server ends (they
  // hold the service, not the server's state) use nothing the server freed.
  HandlePool handles;

 private:
  void reap_loop();

  std::string api_key_;
  std::mutex users_mu_;
  std::map<std::string, GuestUsers> users_;
  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool stopping_ = false;
  std::thread reaper_;
};

// Adds the routes; `service` lives as long as the server.
void add_e2b_routes(ServerState& state, E2bService& service);
void add_e2b_control_routes(ServerState& state, E2bService& service);
void add_e2b_process_routes(ServerState& state, E2bService& service);
void add_e2b_filesystem_routes(ServerState& state, E2bService& service);
void add_e2b_envd_rest_routes(ServerState& state, E2bService& service);

// The E2B control plane's error body: {"code": HTTP status, "message"}.
Response api_error(int status, const std::string& message);
Response api_error(const Error& error);

}  // namespace moat::server::e2b
