#include "server/server.h"

#include <signal.h>
#include <sys/resource.h>

#include <cstdio>

#include "moat/runtime.h"
#include "moat/sandboxes.h"
#include "server/bearer_token.h"
#include "server/http_server.h"
#include "server/server_state.h"

namespace moat::server {
namespace {

void add_all_routes(ServerState& state) {
  add_system_routes(state);
  add_sandbox_routes(state);
  add_exec_routes(state);
  add_file_routes(state);
  add_image_routes(state);
  add_volume_routes(state);
}

// Every connection, pipe and socket to a shim is a descriptor: take what
// the hard limit allows.
void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

void stop_started(ServerState& state) {
  std::set<std::string> ids;
  {
    std::lock_guard lock(state.started_mu);
    ids.swap(state.started);
  }
  for (const auto& id : ids) {
    Status s = stop_sandbox(id);
    if (!s) std::fprintf(stderr, "moat serve: stop %s: %s\n", id.c_str(), s.error().message.c_str());
  }
}

}  // namespace

std::string route_table() {
  ServerState state;
  add_all_routes(state);
  std::string out;
  for (const Route& r : state.router.routes()) out += r.method + " " + r.pattern + "\n";
  return out;
}

Status serve(const ServeOptions& options) {
  ServerState state;
  state.options = options;
  add_all_routes(state);
  // A client that leaves makes writes to its pipe or socket fail with EPIPE;
  // the signal would end the server.
  ::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  Listener listener;
  MOAT_ASSIGN_OR_RETURN(std::string home, home_directory());
  if (!options.listen.empty()) {
    std::string token_file = options.token_file.empty() ? home + "/server.token" : options.token_file;
    MOAT_ASSIGN_OR_RETURN(listener.token, load_or_create_token(token_file));
    listener.tcp_address = options.listen;
    std::fprintf(stderr, "moat serve: listening on http://%s (bearer token in %s)\n", options.listen.c_str(),
                 token_file.c_str());
  } else {
    listener.unix_path = options.unix_socket.empty() ? home + "/moat.sock" : options.unix_socket;
    std::fprintf(stderr, "moat serve: listening on unix:%s\n", listener.unix_path.c_str());
  }
  Status served = run_http_server(state, listener, [] { std::fflush(stderr); });
  state.handles.clear();
  if (options.stop_on_exit) stop_started(state);
  return served;
}

}  // namespace moat::server
