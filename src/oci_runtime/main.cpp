// moat-runtime: an OCI runtime with runc's command line, so container
// engines (podman through conmon, containerd's runc shim with BinaryName,
// CRI-O) run their containers as moat microVMs. docs/oci-runtime.md.
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "moat/runtime.h"
#include "moat/version.h"
#include "oci_runtime/container_state.h"
#include "oci_runtime/init_keeper.h"
#include "oci_runtime/runtime_commands.h"
#include "oci_runtime/runtime_log.h"
#include "util/read_file.h"

namespace {

using namespace moat::oci;

std::string self_path(const char* argv0) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) return std::string(buf, static_cast<std::size_t>(n));
  return argv0;
}

// Engines call some commands with a bare environment (podman's `state` has
// only XDG_RUNTIME_DIR): QEMU and helpers are found on a standard PATH.
void default_environment() {
  if (!std::getenv("PATH")) ::setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
}

int keep(const std::string& spec_path) {
  int ready_fd = ::fcntl(3, F_GETFD) >= 0 ? 3 : -1;
  auto text = moat::read_file_bounded(spec_path, 8u << 20);
  if (!text) {
    std::fprintf(stderr, "moat-runtime: %s\n", text.error().message.c_str());
    return 1;
  }
  auto spec = parse_keeper_spec(*text);
  if (!spec) {
    std::fprintf(stderr, "moat-runtime: %s\n", spec.error().message.c_str());
    return 1;
  }
  return run_keeper(*spec, ready_fd);
}

}  // namespace

int main(int argc, char** argv) {
  default_environment();
  CLI::App app{"moat-runtime: an OCI runtime that runs each container in a moat microVM"};
  app.require_subcommand(1);
  app.set_version_flag("-v,--version",
                       std::string("moat-runtime version ") + moat::version() + "\nspec: 1.1.0");
  std::string root = kDefaultRoot;
  LogSettings log;
  bool systemd_cgroup = false;
  app.add_option("--root", root, "State directory")->capture_default_str();
  app.add_option("--log", log.path, "Log file (errors and warnings, one per line)");
  app.add_option("--log-format", log.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--debug", log.debug, "Warnings to stderr too");
  app.add_flag("--systemd-cgroup", systemd_cgroup, "Accepted (the VM has no host cgroup path)");
  std::string criu, rootless;
  app.add_option("--criu", criu, "Accepted, unused");
  app.add_option("--rootless", rootless, "Accepted, unused");

  std::string id, signal;
  CreateFlags create_flags;
  int preserve_fds = 0;
  bool no_pivot = false, no_new_keyring = false;
  auto* create = app.add_subcommand("create", "Create a container (boot its VM; the process waits for start)");
  create->add_option("id", id)->required();
  create->add_option("-b,--bundle", create_flags.bundle, "The bundle directory (default: the working directory)");
  create->add_option("--pid-file", create_flags.pid_file, "Where to write the container process's pid");
  create->add_option("--console-socket", create_flags.console_socket, "Unix socket to send the pty master to");
  create->add_flag("--no-pivot", no_pivot, "Accepted");
  create->add_flag("--no-new-keyring", no_new_keyring, "Accepted");
  create->add_option("--preserve-fds", preserve_fds, "Accepted (no descriptor reaches the guest)");

  auto* start = app.add_subcommand("start", "Start the container's process");
  start->add_option("id", id)->required();
  auto* state = app.add_subcommand("state", "Print the container's state as JSON");
  state->add_option("id", id)->required();

  bool all = false;
  auto* kill = app.add_subcommand("kill", "Send a signal to the container's process");
  kill->add_option("id", id)->required();
  kill->add_option("signal", signal, "Name or number (default SIGTERM)");
  kill->add_option("-s,--signal", signal, "Name or number");
  kill->add_flag("-a,--all", all, "Every process of the container (they are all in its VM)");

  auto* pause = app.add_subcommand("pause", "Pause the container: its VM's vCPUs stop, memory kept");
  pause->add_option("id", id)->required();
  auto* resume = app.add_subcommand("resume", "Resume a paused container");
  resume->add_option("id", id)->required();

  std::string resources_file;
  auto* update = app.add_subcommand("update", "Change the container's resources (its VM's size is fixed while it runs)");
  update->add_option("id", id)->required();
  update->add_option("-r,--resources", resources_file, "A LinuxResources JSON file, or - for standard input");

  bool force = false;
  auto* del = app.add_subcommand("delete", "Delete a container and its VM");
  del->add_option("id", id)->required();
  del->add_flag("-f,--force", force, "Kill a running container first");

  std::string format = "table";
  bool quiet = false;
  auto* list = app.add_subcommand("list", "List containers");
  list->add_option("-f,--format", format, "table or json");
  list->add_flag("-q,--quiet", quiet, "Only ids");

  auto* ps = app.add_subcommand("ps", "The container's host processes");
  ps->add_option("-f,--format", format, "table or json");
  ps->prefix_command();

  ExecFlags exec_flags;
  auto* exec = app.add_subcommand("exec", "Run another process in the container");
  exec->add_option("-p,--process", exec_flags.process_file, "A process JSON (config.json's form)");
  exec->add_flag("-t,--tty", exec_flags.tty, "Give the process a terminal");
  exec->add_flag("-d,--detach", exec_flags.detach, "Return once the process runs");
  exec->add_option("--console-socket", exec_flags.console_socket, "Unix socket to send the pty master to");
  exec->add_option("--pid-file", exec_flags.pid_file, "Where to write the process's pid");
  exec->add_option("--cwd", exec_flags.cwd, "Working directory");
  exec->add_option("-e,--env", exec_flags.env, "KEY=VALUE");
  exec->add_option("-u,--user", exec_flags.user, "UID[:GID]");
  exec->add_option("--preserve-fds", preserve_fds, "Accepted");
  exec->prefix_command();

  app.add_subcommand("features", "Print what this runtime supports (JSON)");
  std::string spec_path;
  auto* keeper = app.add_subcommand("keep", "")->group("");  // internal: the container's process on the host
  keeper->add_option("--spec", spec_path)->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    // runc prints usage problems and exits 1.
    std::fprintf(stderr, "moat-runtime: %s\n", e.what());
    return 1;
  }
  configure_log(log);
  if (root.empty() || root[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof(cwd))) root = std::string(cwd) + "/" + root;
  }
  StateDir dir(root);
  moat::RuntimeOptions rt;
  rt.home = dir.moat_home();
  if (auto st = moat::configure_runtime(rt); !st) {
    log_error(st.error().message);
    return 1;
  }
  std::string self = self_path(argv[0]);

  if (keeper->parsed()) return keep(spec_path);
  if (create->parsed()) return create_container(dir, self, id, create_flags);
  if (start->parsed()) return start_container(dir, id);
  if (state->parsed()) return print_state(dir, id);
  if (kill->parsed()) return kill_container(dir, id, signal, all);
  if (del->parsed()) return delete_container(dir, id, force);
  if (pause->parsed()) return set_container_paused(dir, id, true);
  if (resume->parsed()) return set_container_paused(dir, id, false);
  if (update->parsed()) return update_container(dir, id, resources_file);
  if (list->parsed()) return list_containers(dir, format, quiet);
  if (ps->parsed()) {
    auto rest = ps->remaining();
    if (rest.empty()) {
      log_error("ps: give the container id");
      return 1;
    }
    return print_ps(dir, rest[0], format);
  }
  if (exec->parsed()) {
    auto rest = exec->remaining();
    if (rest.empty()) {
      log_error("exec: give the container id");
      return 255;
    }
    exec_flags.args.assign(rest.begin() + 1, rest.end());
    return exec_in_container(dir, self, rest[0], exec_flags);
  }
  return print_features();
}
