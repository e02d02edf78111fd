#include "cli/serve_command.h"

#include <unistd.h>

#include <cstdio>

#include "cli/exec_runner.h"
#include "cli/exit_codes.h"
#include "server/server.h"

namespace moat::cli {
namespace {

struct Flags {
  CLI::App* serve = nullptr;
  server::ServeOptions options;
  std::string log_format = "text";
  bool routes = false;
};

Flags& flags() {
  static Flags f;
  return f;
}

}  // namespace

void register_serve_command(CLI::App& app) {
  Flags& f = flags();
  f.serve = app.add_subcommand("serve", "Serve moat's API over HTTP and WebSocket (REST, /metrics)");
  auto& o = f.options;
  f.serve->add_option("--socket", o.unix_socket, "Unix socket to listen on (default $MOAT_HOME/moat.sock, mode 0600)");
  f.serve->add_option("--listen", o.listen, "Listen on TCP HOST:PORT instead; clients need the bearer token");
  f.serve->add_option("--token-file", o.token_file,
                      "The bearer token for --listen (default $MOAT_HOME/server.token, made with mode 0600 if absent)");
  f.serve->add_option("--tls-cert", o.tls_cert, "PEM certificate (chain) for --listen: clients connect with TLS")
      ->check(CLI::ExistingFile);
  f.serve->add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
  f.serve->add_option("--log-format", f.log_format, "Request log on stderr: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  f.serve->add_flag("--stop-on-exit", o.stop_on_exit, "Stop the sandboxes this server started when it ends");
  f.serve->add_option("--max-body", o.max_body_bytes, "Largest JSON request body in bytes (file uploads stream)")
      ->check(CLI::Range(std::uint64_t{1024}, std::uint64_t{1} << 30));
  f.serve->add_option("--max-connections", o.max_connections, "Connections at once; more are answered 503")
      ->check(CLI::Range(1u, 1u << 20));
  f.serve->add_option("--max-requests", o.max_in_flight, "Requests handled at once; more are answered 503")
      ->check(CLI::Range(1u, 1u << 16));
  f.serve->add_option("--idle-timeout", o.idle_timeout_s, "Seconds a connection may wait between requests")
      ->check(CLI::Range(1u, 86400u));
  f.serve->add_flag("--e2b", o.e2b,
                    "Serve the E2B-compatible API too (docs/e2b.md): point E2B_API_URL and E2B_SANDBOX_URL here");
  f.serve->add_option("--e2b-templates", o.e2b_templates, "JSON file mapping E2B template ids to images (docs/e2b.md)")
      ->check(CLI::ExistingFile);
  f.serve->add_flag("--routes", f.routes, "Print the routes served and exit");
  f.serve->get_option("--socket")->excludes("--listen");
  f.serve->get_option("--tls-cert")->needs("--listen")->needs("--tls-key");
  f.serve->get_option("--tls-key")->needs("--tls-cert");
  f.serve->get_option("--e2b")->needs("--listen");
  f.serve->get_option("--e2b-templates")->needs("--e2b");
}

int run_serve_command() {
  Flags& f = flags();
  if (!f.serve || !*f.serve) return -1;
  if (f.routes) {
    std::fputs(server::route_table().c_str(), stdout);
    return 0;
  }
  f.options.log_json = f.log_format == "json";
  Status served = server::serve(f.options);
  std::fflush(stdout);
  std::fflush(stderr);
  if (!served) {
    print_error(served.error().message);
    std::fflush(stderr);
    ::_exit(kExitMoatError);
  }
  // Threads of requests that were still running (a followed log, an
  // attached command) end with the process, not by static destructors
  // pulled from under them.
  ::_exit(0);
}

}  // namespace moat::cli
