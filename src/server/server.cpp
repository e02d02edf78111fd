#include "server/server.h"

#include <signal.h>
#include <sys/resource.h>

#include <cstdio>

#include "moat/runtime.h"
#include "moat/sandboxes.h"
#include "server/bearer_token.h"
#include "server/e2b/e2b_service.h"
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
  add_snapshot_routes(state);
  add_root_routes(state);
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
  std::string where;
  if (!options.listen.empty()) {
    std::string token_file = options.token_file.empty() ? home + "/server.token" : options.token_file;
    MOAT_ASSIGN_OR_RETURN(listener.token, load_or_create_token(token_file));
    listener.tcp_address = options.listen;
    listener.tls_cert = options.tls_cert;
    listener.tls_key = options.tls_key;
    where = (options.tls_cert.empty() ? "http://" : "https://") + options.listen + " (bearer token in " + token_file + ")";
    if (options.e2b) {
      MOAT_ASSIGN_OR_RETURN(e2b::TemplateMap templates, e2b::TemplateMap::load(options.e2b_templates));
      state.e2b = std::make_shared<e2b::E2bService>(std::move(templates), listener.token);
      MOAT_TRY(state.e2b->keep_records_in(home + "/e2b/sandboxes"));
      e2b::add_e2b_routes(state, *state.e2b);
      where += "; E2B API on the same address";
    }
  } else {
    if (options.e2b)
      return make_error("--e2b needs --listen HOST:PORT: the E2B SDKs reach a server by URL", EINVAL);
    if (!options.tls_cert.empty() || !options.tls_key.empty())
      return make_error("--tls-cert and --tls-key are for --listen (the unix socket's mode is its protection)", EINVAL);
    listener.unix_path = options.unix_socket.empty() ? home + "/moat.sock" : options.unix_socket;
    where = "unix:" + listener.unix_path;
  }
  // Said once listening, so a caller that waits for the line can connect.
  Status served = run_http_server(state, listener, [&] {
    std::fprintf(stderr, "moat serve: listening on %s\n", where.c_str());
    std::fflush(stderr);
  });
  state.e2b.reset();
  state.handles.clear();
  if (options.stop_on_exit) stop_started(state);
  return served;
}

}  // namespace moat::server
