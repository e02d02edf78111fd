// moat-agent: PID 1 of every sandbox. Brings the guest up, serves the host's
// protocol on a virtio-serial port, and takes the guest down when asked.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "agent/agent_server.h"
#include "agent/boot_config.h"
#include "agent/channel.h"
#include "agent/guest_mounts.h"
#include "agent/small_file.h"
#include "agent/system_setup.h"

namespace {

using moat::agent::console_log;
using moat::agent::trace;

std::string read_cmdline() { return moat::agent::read_small_file("/proc/cmdline", 64 * 1024); }

// A boot failure must reach the host: print it to the console (the shim shows
// the console tail) and stop the VM.
[[noreturn]] void fail_boot(const std::string& what) {
  console_log("moat-agent: boot failed: " + what);
  moat::agent::power_off();
}

void attach_console() {
  int fd = ::open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) return;
  ::dup2(fd, 0);
  ::dup2(fd, 1);
  ::dup2(fd, 2);
  if (fd > 2) ::close(fd);
}

}  // namespace

int main() {
  if (::getpid() != 1) {
    console_log("moat-agent: must run as PID 1 inside a moat guest");
    return 1;
  }
  if (auto st = moat::agent::mount_early_filesystems(); !st) fail_boot(st.error().message);
  moat::agent::enable_boot_trace(read_cmdline().find("moat.debug=1") != std::string::npos);
  trace("agent started");
  attach_console();
  std::string cmdline = read_cmdline();
  trace("early filesystems mounted");
  auto cfg = moat::agent::parse_boot_config(cmdline);
  if (auto st = moat::agent::enter_root_filesystem(cfg); !st) fail_boot(st.error().message);
  trace("root filesystem entered");
  if (auto st = moat::agent::mount_guest_filesystems(); !st) fail_boot(st.error().message);
  trace("guest filesystems mounted");
  if (!cfg.mount_error.empty()) fail_boot(cfg.mount_error);
  // The agent's own files go into the root filesystem before any volume or
  // tmpfs is mounted, so they can never land in one, whatever the mount
  // paths or symlinks in the image (a volume at /etc, /etc a symlink into a
  // mount point): at this moment no sandbox mount exists to land in. A mount
  // over /etc then hides them, as mounting over any directory would. Refusing
  // risky mount targets instead would have to foresee every path and link.
  moat::agent::write_identity_files(cfg.hostname, cfg.network);
  if (auto st = moat::agent::mount_sandbox_filesystems(cfg.mounts); !st) fail_boot(st.error().message);
  if (auto st = moat::agent::set_hostname(cfg.hostname); !st) console_log("moat-agent: " + st.error().message);
  pid_t setup_pid = moat::agent::start_interface_setup(cfg.network);
  trace("interfaces configuring");
  auto channel = moat::agent::open_virtio_port(cfg.port_name, 5000);
  if (!channel) fail_boot(channel.error().message);
  if (cfg.network) {
    // A sandbox given a network must not answer the host as booted without
    // it: a failure here is a boot failure, whose console line the host
    // shows. Waiting at the first command instead would hide one more host
    // round trip (~20 ms under TCG) but fail a sandbox already counted as up.
    if (auto st = moat::agent::await_network_setup(setup_pid); !st) fail_boot(st.error().message);
    setup_pid = -1;
  }
  trace("channel open; serving");

  moat::agent::AgentServer server(std::move(*channel));
  server.set_network(cfg.network);
  server.set_pending_setup(setup_pid);
  server.run();
  moat::agent::kill_all_processes(2000);
  moat::agent::power_off();
}
