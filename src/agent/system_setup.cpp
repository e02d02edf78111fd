#include "agent/system_setup.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "agent/network_setup.h"
#include "agent/small_file.h"
#include "proto/guest_network.h"
#include "util/unique_fd.h"

namespace moat::agent {
namespace {

// The upper filesystem stays mounted below the overlay but becomes unreachable
// by path after the switch; an O_PATH handle on it lets power_off() remount it
// read-only through /proc/self/fd so the journal is clean.
int g_upper_handle = -1;

Status make_dir(const char* path, mode_t mode) {
  if (::mkdir(path, mode) != 0 && errno != EEXIST) return errno_error(std::string("mkdir ") + path);
  return ok_status();
}

Status do_mount(const char* source, const char* target, const char* type, unsigned long flags,
                const char* data) {
  if (::mount(source, target, type, flags, data) != 0)
    return errno_error(std::string("mount ") + type + " on " + target);
  return ok_status();
}

Status mount_lower(const BootConfig& cfg) {
  MOAT_TRY(make_dir("/lower", 0755));
  // Try the declared type first; fall back to the other so an image of either
  // kind boots.
  const char* first = cfg.lower_fs == "erofs" ? "erofs" : "ext4";
  const char* second = cfg.lower_fs == "erofs" ? "ext4" : "erofs";
  if (::mount("/dev/vda", "/lower", first, MS_RDONLY, nullptr) == 0)
    return ok_status();
  int err = errno;
  if (::mount("/dev/vda", "/lower", second, MS_RDONLY, nullptr) == 0) return ok_status();
  return errno_error(std::string("mount lower /dev/vda as ") + first, err);
}

Status mount_overlay_root() {
  MOAT_TRY(make_dir("/upperfs", 0755));
  MOAT_TRY(do_mount("/dev/vdb", "/upperfs", "ext4", MS_NOATIME, "noinit_itable"));
  MOAT_TRY(make_dir("/upperfs/upper", 0755));
  MOAT_TRY(make_dir("/upperfs/work", 0755));
  g_upper_handle = ::open("/upperfs", O_PATH | O_DIRECTORY | O_CLOEXEC);
  trace("upper mounted");
  // index=off and xino=off: the lower is a fixed image, and hardlink-indexing
  // needs file handles the ext4/erofs pair would have to support identically.
  MOAT_TRY(do_mount("overlay", "/newroot", "overlay", 0,
                    "lowerdir=/lower,upperdir=/upperfs/upper,workdir=/upperfs/work,"
                    "index=off,xino=off,redirect_dir=on,metacopy=off"));
  trace("overlay mounted");
  return ok_status();
}

// The host directory served as the root (an OCI bundle's rootfs): the
// virtio-fs mount at "/", which is then no longer one of the sandbox mounts.
Status mount_shared_root(BootConfig& cfg) {
  auto root = std::find_if(cfg.mounts.begin(), cfg.mounts.end(), [](const proto::GuestMount& m) {
    return m.kind == proto::GuestMount::Kind::kVirtiofs && m.path == "/";
  });
  if (root == cfg.mounts.end()) return make_error("moat.root=virtiofs but no virtio-fs mount at /");
  unsigned long flags = root->read_only ? MS_RDONLY : 0;
  MOAT_TRY(do_mount(root->tag.c_str(), "/newroot", "virtiofs", flags, nullptr));
  cfg.mounts.erase(root);
  trace("shared root mounted");
  return ok_status();
}

Status switch_into(const char* newroot) {
  // Keep /dev (devtmpfs) across the switch; /proc and /sys are mounted anew.
  MOAT_TRY(make_dir((std::string(newroot) + "/dev").c_str(), 0755));
  ::umount2("/proc", MNT_DETACH);
  ::umount2("/sys", MNT_DETACH);
  MOAT_TRY(do_mount("/dev", (std::string(newroot) + "/dev").c_str(), nullptr, MS_MOVE, nullptr));
  if (::chdir(newroot) != 0) return errno_error("chdir new root");
  MOAT_TRY(do_mount(".", "/", nullptr, MS_MOVE, nullptr));
  if (::chroot(".") != 0) return errno_error("chroot new root");
  if (::chdir("/") != 0) return errno_error("chdir /");
  return ok_status();
}

void make_link(const char* target, const char* path) {
  if (::symlink(target, path) != 0 && errno != EEXIST) {
    console_log(std::string("moat-agent: symlink ") + path + ": " + std::strerror(errno));
  }
}

}  // namespace

namespace {
bool g_trace = false;
}  // namespace

void enable_boot_trace(bool on) { g_trace = on; }

// Allocates nothing, so the setup child may trace too (start_interface_setup).
void trace(const char* phase) {
  if (!g_trace) return;
  int fd = ::open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  char prefix[] = "moat-agent: ";
  char newline[] = "\n";
  // One writev: /dev/kmsg makes one record of each write.
  struct iovec parts[] = {{prefix, sizeof(prefix) - 1}, {const_cast<char*>(phase), std::strlen(phase)}, {newline, 1}};
  ssize_t w = ::writev(fd, parts, 3);
  (void)w;
  ::close(fd);
}

void console_log(const std::string& line) {
  std::string text = line + "\n";
  int fd = ::open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) fd = ::dup(2);
  if (fd >= 0) {
    ssize_t n = ::write(fd, text.data(), text.size());
    (void)n;  // nothing more to do if the console itself fails
    ::close(fd);
  }
}

int upper_filesystem_handle() { return g_upper_handle; }

Status mount_early_filesystems() {
  MOAT_TRY(make_dir("/proc", 0555));
  MOAT_TRY(make_dir("/sys", 0555));
  MOAT_TRY(make_dir("/dev", 0755));
  MOAT_TRY(do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));
  MOAT_TRY(do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));
  if (::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") != 0 && errno != EBUSY)
    return errno_error("mount devtmpfs on /dev");
  return ok_status();
}

Status enter_root_filesystem(BootConfig& cfg) {
  if (cfg.root == RootMode::kNone) return ok_status();
  MOAT_TRY(make_dir("/newroot", 0755));
  if (cfg.root == RootMode::kVirtiofs) {
    MOAT_TRY(mount_shared_root(cfg));
  } else if (cfg.root == RootMode::kWritable) {
    MOAT_TRY(do_mount("/dev/vda", "/newroot", "ext4", MS_NOATIME, nullptr));
  } else {
    MOAT_TRY(mount_lower(cfg));
    MOAT_TRY(mount_overlay_root());
  }
  return switch_into("/newroot");
}

Status mount_guest_filesystems() {
  struct Mount {
    const char* source;
    const char* target;
    const char* type;
    unsigned long flags;
    const char* data;
    mode_t dir_mode;
  };
  const Mount mounts[] = {
      {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, 0555},
      {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, 0555},
      {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", 0755},
      {"shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777},
      {"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777},
      {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", 0755},
      {"cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, 0555},
  };
  if (::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") != 0 && errno != EBUSY) {
    // Already moved over from the initramfs in the usual case.
  }
  for (const auto& m : mounts) {
    // An image may lack a mount point; create it (in the writable upper).
    if (::mkdir(m.target, m.dir_mode) != 0 && errno != EEXIST) {
      console_log(std::string("moat-agent: mkdir ") + m.target + ": " + std::strerror(errno));
      continue;
    }
    if (::mount(m.source, m.target, m.type, m.flags, m.data) != 0) {
      // cgroup2 is optional (a kernel without it still runs commands).
      if (std::strcmp(m.type, "cgroup2") == 0) continue;
      return errno_error(std::string("mount ") + m.type + " on " + m.target);
    }
  }
  make_link("/proc/self/fd", "/dev/fd");
  make_link("/proc/self/fd/0", "/dev/stdin");
  make_link("/proc/self/fd/1", "/dev/stdout");
  make_link("/proc/self/fd/2", "/dev/stderr");
  // devpts instance at /dev/pts is what /dev/ptmx must open.
  ::unlink("/dev/ptmx");
  make_link("pts/ptmx", "/dev/ptmx");
  return ok_status();
}

namespace {

int bring_up_loopback() {
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return 1;
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return 2;
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) return 3;
  return 0;
}

// What the setup child found configuring the network; the agent reads it
// once the child has exited.
NetworkFailure g_network_failure;

// The setup child: loopback, then, when `network` is not null, the guest's
// network interface, whose outcome goes there.
int set_up_interfaces(void* network) {
  int rc = bring_up_loopback();
  if (network != nullptr) {
    *static_cast<NetworkFailure*>(network) = configure_network();
    trace("network interface configured");
  }
  return rc;
}

alignas(16) char g_setup_stack[64 * 1024];

}  // namespace

namespace {

// Writes `content` to `path` unless it holds exactly that already, so a
// restarted sandbox costs no writes. The path is the guest's own: following
// a symlink the image planted there stays inside the guest.
void write_if_changed(const char* path, const std::string& content) {
  if (read_small_file(path, 64 * 1024) == content) return;
  ::unlink(path);  // a read-only bind or a dangling symlink must not block us
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return;
  ssize_t n = ::write(fd, content.data(), content.size());
  (void)n;
  ::close(fd);
}

}  // namespace

// /etc/hostname, /etc/hosts and /etc/resolv.conf as programs expect them.
// With a network the shim's resolver answers A and AAAA queries alike, so
// one nameserver line serves both families. Without one, resolv.conf names
// no server, so a lookup fails at once instead of timing out.
void write_identity_files(const std::string& hostname, bool network) {
  ::mkdir("/etc", 0755);
  write_if_changed("/etc/hostname", hostname + "\n");
  write_if_changed("/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" +
                                     hostname + "\n");
  write_if_changed("/etc/resolv.conf", network ? std::string("nameserver ") + proto::kResolverIpv4 + "\n"
                                               : std::string("# written by moat: this sandbox has no network\n"));
}

Status set_hostname(const std::string& hostname) {
  if (::sethostname(hostname.data(), hostname.size()) != 0) return errno_error("sethostname");
  return ok_status();
}

pid_t start_interface_setup(bool network) {
  void* result = network ? &g_network_failure : nullptr;
  // Bringing up lo (IPv6 address configuration included) takes ~45 ms of
  // guest time under TCG, much of it waiting, so it runs beside the rest of
  // boot in a child that shares our memory but only uses its own stack;
  // eth0 adds ~30 ms. With our memory but not a thread's state of its own
  // (it runs on our TLS, so malloc's per-thread cache would be shared), the
  // child must not allocate: hence NetworkFailure, in fixed storage.
  pid_t pid = ::clone(set_up_interfaces, g_setup_stack + sizeof(g_setup_stack), CLONE_VM | SIGCHLD, result);
  if (pid < 0) {
    if (set_up_interfaces(result) != 0) console_log("moat-agent: bring up lo failed");
    return -1;
  }
  return pid;
}

Status await_network_setup(pid_t setup_pid) {
  if (setup_pid > 0) {
    while (::waitpid(setup_pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (g_network_failure.failed()) return network_error(g_network_failure);
  return ok_status();
}

namespace {

// Reaps every child that has ended; true once none is left. Every user
// process is a child of PID 1 (orphans are re-parented to it), so "no
// children left" means everything is gone. kill(-1, 0) cannot tell: it also
// counts kernel threads.
bool reap_until_none_left() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  return ::waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD;
}

// Reaps every `step_ms` until no child is left (true) or `ms` passed.
bool wait_until_none_left(int ms, int step_ms) {
  struct timespec step {0, step_ms * 1000L * 1000L};
  for (int waited = 0;; waited += step_ms) {
    if (reap_until_none_left()) return true;
    if (waited >= ms) return false;
    ::nanosleep(&step, nullptr);
  }
}

}  // namespace

void kill_all_processes(int grace_ms, int wait_ms) {
  if (grace_ms > 0) {
    ::kill(-1, SIGTERM);
    if (wait_until_none_left(grace_ms, 10)) return;
  }
  ::kill(-1, SIGKILL);
  wait_until_none_left(wait_ms, 1);
}

void power_off() {
  ::sync();
  // Unmount in reverse order of mounting; failures are fine (MNT_DETACH
  // still drops them from the namespace; sync above already flushed data).
  for (const char* m : {"/sys/fs/cgroup", "/run", "/tmp", "/dev/shm", "/dev/pts", "/sys", "/proc"})
    ::umount2(m, MNT_DETACH);
  ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_RDONLY, nullptr);
  if (g_upper_handle >= 0) {
    std::string path = "/proc/self/fd/" + std::to_string(g_upper_handle);
    // /proc was just detached; the magic link needs it, so mount it privately.
    ::mkdir("/run", 0755);
    if (::mount("proc", "/proc", "proc", 0, nullptr) == 0) {
      ::mount(nullptr, path.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr);
      ::umount2("/proc", MNT_DETACH);
    }
  }
  ::sync();
  ::reboot(RB_AUTOBOOT);
  // reboot() only returns on failure; nothing else can be done.
  for (;;) ::pause();
}

}  // namespace moat::agent
