// moat-runtime's commands, runc's command line mapped onto libmoat
// sandboxes (docs/oci-runtime.md). Each returns the process's exit code
// after reporting any error through runtime_log.h: 0, 1 for an error (as
// runc), 255 for an exec that could not run.
#pragma once

#include <string>
#include <vector>

#include "oci_runtime/container_state.h"

namespace moat::oci {

struct CreateFlags {
  std::string bundle;  // default: the working directory
  std::string pid_file;
  std::string console_socket;
};

struct ExecFlags {
  std::string process_file;  // --process: a process JSON instead of args
  std::vector<std::string> args;
  bool tty = false;
  bool detach = false;
  std::string console_socket;
  std::string pid_file;
  std::string cwd;
  std::vector<std::string> env;
  std::string user;  // uid[:gid]
};

int create_container(const StateDir& dir, const std::string& self, const std::string& id, const CreateFlags& f);
int start_container(const StateDir& dir, const std::string& id);
int print_state(const StateDir& dir, const std::string& id);
int kill_container(const StateDir& dir, const std::string& id, const std::string& signal, bool all);
int delete_container(const StateDir& dir, const std::string& id, bool force);
int set_container_paused(const StateDir& dir, const std::string& id, bool pause);
// `update --resources FILE` ("-": standard input): what can apply to the
// running VM does (today nothing changes live: memory and vCPUs are fixed
// while it runs, so a different size is an error and the same one a no-op;
// fields create does not apply are warned about likewise).
int update_container(const StateDir& dir, const std::string& id, const std::string& resources_file);
int list_containers(const StateDir& dir, const std::string& format, bool quiet);
int print_ps(const StateDir& dir, const std::string& id, const std::string& format);
int exec_in_container(const StateDir& dir, const std::string& self, const std::string& id, const ExecFlags& f);
int print_features();

// "KILL", "kill", "SIGKILL", "9": the signal number; EINVAL `unknown signal`.
Result<int> parse_signal(const std::string& text);

}  // namespace moat::oci
