// moat: the command line over libmoat.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "cli/doctor.h"
#include "cli/exec_runner.h"
#include "moat/sandbox.h"
#ifdef MOAT_HAVE_IMAGE_COMMANDS
#include "cli/image_commands.h"
#endif

namespace {

using moat::cli::ExecFlags;
using moat::cli::kExitMoatError;
using moat::cli::print_error;

struct VmFlags {
  std::string rootfs_dir;
  std::string rootfs_image;
  bool writable_root = false;
  int cpus = 1;
  int memory_mib = 256;
  std::uint64_t disk_size_mib = 4096;
  std::string accel = "auto";
  std::string hostname;
  double boot_timeout_s = 60;
};

void add_vm_flags(CLI::App* cmd, VmFlags& f) {
  cmd->add_option("--rootfs-dir", f.rootfs_dir, "Boot from this directory (packed into a cached ext4 image)");
  cmd->add_option("--rootfs-image", f.rootfs_image, "Boot from this ext4 or EROFS image (read-only, under a fresh upper)");
  cmd->add_flag("--writable-root", f.writable_root, "Boot --rootfs-image as the only, writable root");
  cmd->add_option("--cpus", f.cpus, "Virtual CPUs")->capture_default_str();
  cmd->add_option("--memory", f.memory_mib, "Guest memory in MiB")->capture_default_str();
  cmd->add_option("--disk-size", f.disk_size_mib, "Writable disk size in MiB (sparse)")->capture_default_str();
  cmd->add_option("--accel", f.accel, "auto, kvm or tcg")->capture_default_str();
  cmd->add_option("--hostname", f.hostname, "Guest hostname (default moat-<id>)");
  cmd->add_option("--boot-timeout", f.boot_timeout_s, "Seconds to wait for the guest")->capture_default_str();
}

void add_exec_flags(CLI::App* cmd, ExecFlags& f) {
  // One value per occurrence (-e A=1 -e B=2), so the option never swallows
  // the command after it.
  cmd->add_option("-e,--env", f.env, "Set an environment variable (KEY=VALUE, or KEY to pass through)")
      ->allow_extra_args(false);
  cmd->add_option("-w,--workdir", f.workdir, "Working directory in the guest");
  cmd->add_option("-u,--user", f.user, "User: name, uid, name:group or uid:gid");
  cmd->add_flag("-t,--tty", f.tty, "Give the command a terminal");
  cmd->add_flag("-i,--interactive", f.interactive, "Forward stdin to the command");
  cmd->add_option("--timeout", f.timeout_s, "Kill the command after this many seconds");
  cmd->add_option("--ulimit", f.ulimits, "Resource limit NAME=SOFT[:HARD] (nofile, nproc, as, ...)")
      ->allow_extra_args(false);
}

moat::SandboxOptions sandbox_options(const VmFlags& f, bool ephemeral) {
  moat::SandboxOptions o;
  o.rootfs_dir = f.rootfs_dir;
  o.rootfs_image = f.rootfs_image;
  o.writable_root = f.writable_root;
  o.cpus = f.cpus;
  o.memory_mib = f.memory_mib;
  o.disk_size_mib = f.disk_size_mib;
  o.accel = f.accel;
  o.hostname = f.hostname;
  o.boot_timeout_ms = static_cast<int>(f.boot_timeout_s * 1000);
  o.ephemeral = ephemeral;
  return o;
}

int cmd_run(const VmFlags& vmf, const ExecFlags& ef) {
  if (auto opts = moat::cli::exec_options_from(ef); !opts) {
    print_error(opts.error().message);
    return kExitMoatError;
  }
  auto sb = moat::Sandbox::create(sandbox_options(vmf, /*ephemeral=*/true));
  if (!sb) {
    print_error(sb.error().message);
    return kExitMoatError;
  }
  int code = moat::cli::run_in_sandbox(*sb, ef);
  if (auto st = sb->stop(); !st) {
    print_error(st.error().message);
    if (code == 0) code = kExitMoatError;
  }
  return code;
}

int cmd_create(const VmFlags& vmf) {
  auto sb = moat::Sandbox::create(sandbox_options(vmf, /*ephemeral=*/false));
  if (!sb) {
    print_error(sb.error().message);
    return kExitMoatError;
  }
  std::printf("%s\n", sb->id().c_str());
  return 0;
}

int cmd_exec(const std::string& id, const ExecFlags& ef) {
  auto sb = moat::Sandbox::open(id);
  if (!sb) {
    print_error(sb.error().message);
    return kExitMoatError;
  }
  return moat::cli::run_in_sandbox(*sb, ef);
}

int cmd_stop(const std::vector<std::string>& ids, double timeout_s) {
  int code = 0;
  for (const auto& id : ids) {
    auto sb = moat::Sandbox::open(id);
    if (!sb) {
      print_error(sb.error().message);
      code = 1;
      continue;
    }
    if (auto st = sb->stop(static_cast<int>(timeout_s * 1000)); !st) {
      print_error(st.error().message);
      code = 1;
      continue;
    }
    std::printf("%s\n", id.c_str());
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"moat: run untrusted code in microVMs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moat 0.1.0");

  VmFlags vmf;
  ExecFlags ef;
  std::string id;
  std::vector<std::string> ids;
  double stop_timeout_s = 10;

  auto* run = app.add_subcommand("run", "Start a sandbox, run a command in it, and remove it");
  add_vm_flags(run, vmf);
  add_exec_flags(run, ef);
  run->add_option("command", ef.command, "Command and arguments (after --)");

  auto* create = app.add_subcommand("create", "Start a sandbox and leave it running; prints its id");
  add_vm_flags(create, vmf);

  auto* exec = app.add_subcommand("exec", "Run a command in a running sandbox");
  exec->add_option("sandbox", id, "Sandbox id")->required();
  add_exec_flags(exec, ef);
  exec->add_option("command", ef.command, "Command and arguments (after --)");

  auto* stop = app.add_subcommand("stop", "Stop sandboxes (guest powers off cleanly, then is killed after --timeout)");
  stop->add_option("sandbox", ids, "Sandbox ids")->required();
  stop->add_option("--timeout", stop_timeout_s, "Seconds to wait for a clean power-off")->capture_default_str();

  auto* doctor = app.add_subcommand("doctor", "Show what moat will use and whether sandboxes can start");

#ifdef MOAT_HAVE_IMAGE_COMMANDS
  moat::cli::register_image_commands(app);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
#ifdef MOAT_HAVE_IMAGE_COMMANDS
  if (int rc = moat::cli::run_image_command(); rc >= 0) return rc;
#endif
  if (*run) return cmd_run(vmf, ef);
  if (*create) return cmd_create(vmf);
  if (*exec) return cmd_exec(id, ef);
  if (*stop) return cmd_stop(ids, stop_timeout_s);
  if (*doctor) return moat::cli::run_doctor();
  return 2;
}
