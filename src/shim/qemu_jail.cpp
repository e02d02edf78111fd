#include "shim/qemu_jail.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "jail/namespaces.h"
#include "shim_contract/sandbox_layout.h"
#include "vm/runtime_files.h"

namespace moat::shim {
namespace {

Result<std::string> real_path(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return errno_error("QEMU " + path);
  return std::string(buf);
}

std::string parent_of(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

// A file QEMU reads by name from inside the jail must be readable by the
// jail's user: say which and how to fix it, rather than let QEMU fail on it.
Status check_readable_by(const std::string& what, const std::string& path, uid_t uid) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error(what + " " + path);
  if ((st.st_mode & S_IROTH) != 0 || (st.st_uid == uid && (st.st_mode & S_IRUSR) != 0)) return ok_status();
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return make_error(what + " " + path + " (mode " + mode +
                        ") is not readable by QEMU's jail user; make it readable by others (chmod o+r)",
                    EACCES);
}

// The host root's entries that lead into /usr on a merged-/usr system
// (links), or hold programs and libraries themselves on an older one.
Status add_system_directories(jail::RootTree& tree) {
  MOAT_TRY(tree.add_bind("usr", "/usr"));
  for (const char* name : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    std::string host = std::string("/") + name;
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char text[PATH_MAX];
      ssize_t n = ::readlink(host.c_str(), text, sizeof text - 1);
      if (n <= 0) return errno_error("readlink " + host);
      tree.add_symlink(name, std::string(text, static_cast<std::size_t>(n)));
    } else if (S_ISDIR(st.st_mode)) {
      MOAT_TRY(tree.add_bind(name, host));
    }
  }
  return ok_status();
}

// Inside the jail QEMU's user reaches its binary only through directories
// others may search, as any user would.
Status check_reachable_by_others(const std::string& top, const std::string& binary) {
  for (std::string path = binary;; path = parent_of(path)) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno_error("QEMU " + path);
    if ((st.st_mode & S_IXOTH) == 0)
      return make_error("QEMU's jail user cannot " + std::string(path == binary ? "run " : "enter ") + path +
                            " (others lack x); make it so (chmod o+x), or install QEMU under /usr",
                        EACCES);
    if (path == top) return ok_status();
  }
}

// QEMU installed elsewhere (/opt/qemu/bin/qemu-system-x86_64): its prefix,
// which holds its firmware and modules too; a lone binary: its directory.
Status add_qemu_install(jail::RootTree& tree, const std::string& qemu_binary) {
  if (qemu_binary.rfind("/usr/", 0) == 0) return ok_status();
  std::string dir = parent_of(qemu_binary);
  if (dir.size() > 4 && dir.ends_with("/bin")) dir = parent_of(dir);
  if (dir == "/")
    return make_error("QEMU at " + qemu_binary + " is in the root directory; install it in a directory of its own",
                      EINVAL);
  MOAT_TRY(check_reachable_by_others(dir, qemu_binary));
  return tree.add_bind_at_same_path(dir);
}

}  // namespace

jail::CgroupLimits qemu_cgroup_limits(const vm::VmSpec& spec) {
  std::uint64_t mib = static_cast<std::uint64_t>(spec.memory_mib) + kQemuMemoryOverheadMib;
  if (spec.accel == vm::Accel::kTcg) mib += static_cast<std::uint64_t>(spec.tcg_tb_size_mib);
  jail::CgroupLimits limits;
  limits.memory_bytes = mib << 20;
  limits.pids = kQemuPidsMax;
  limits.cpu_millis = static_cast<std::uint32_t>(spec.cpus) * 1000;
  limits.cpu_weight = spec.cpu_weight;
  limits.io_weight = spec.io_weight;
  return limits;
}

ChildJail QemuJail::child() const {
  ChildJail c;
  c.namespaces = namespaces;
  if (cgroup) c.cgroup_procs = cgroup->procs_fds();
  if (lease) {
    c.root = &root;
    c.identity = &identity;
  }
  return c;
}

Result<std::string> resolve_qemu_binary(const std::string& qemu) {
  if (qemu.find('/') != std::string::npos) {
    if (::access(qemu.c_str(), X_OK) != 0) return errno_error("QEMU " + qemu);
    return real_path(qemu);
  }
  if (std::string found = vm::find_on_path(qemu); !found.empty()) return real_path(found);
  return make_error("QEMU " + qemu + " is not on PATH (install qemu-system-x86, or set MOAT_QEMU)", ENOENT);
}

Result<QemuJail> prepare_qemu_jail(const std::string& sandbox_dir, const std::string& qemu_binary, vm::VmSpec& spec) {
  QemuJail j;
  std::string name = "moat-" + sandbox_dir.substr(sandbox_dir.rfind('/') + 1);
  if (auto group = jail::Cgroup::create(name, qemu_cgroup_limits(spec)); group.ok()) {
    j.cgroup = std::move(*group);
  } else if (spec.io_weight != 0 && group.error().code == ENOTSUP) {
    // An I/O weight the host cannot give fails the start, saying why: it
    // must not be dropped without a word, and with it every other limit.
    return group.error();
  } else {
    j.cgroup_missing = group.error().message;
  }
  if (::geteuid() != 0) return j;
  // Hand-added QEMU arguments may name host paths and host networking (a
  // 9p share, a slirp peer for a benchmark) that a jail would hide.
  if (!spec.extra_qemu_args.empty()) {
    j.unjailed = "vm.extra_qemu_args is set: QEMU runs without a user, namespaces and root of its own";
    return j;
  }
  MOAT_ASSIGN_OR_RETURN(auto lease, jail::UidLease::acquire());
  j.identity = {lease.uid(), lease.gid()};
  j.lease = std::move(lease);
  MOAT_TRY(check_readable_by("the guest kernel", spec.kernel, j.identity.uid));
  MOAT_TRY(check_readable_by("the initramfs", spec.initrd, j.identity.uid));

  std::string mount_point = qemu_root_path(sandbox_dir);
  if (::mkdir(mount_point.c_str(), 0700) != 0 && errno != EEXIST) return errno_error("mkdir " + mount_point);
  jail::RootTree tree(mount_point);
  MOAT_TRY(add_system_directories(tree));
  MOAT_TRY(add_qemu_install(tree, qemu_binary));
  tree.add_directory("dev");
  MOAT_TRY(tree.add_bind("dev/null", "/dev/null"));
  MOAT_TRY(tree.add_bind("dev/urandom", "/dev/urandom"));
  if (spec.accel == vm::Accel::kKvm) {
    MOAT_TRY(tree.add_bind("dev/kvm", "/dev/kvm"));
    struct stat st {};
    if (::stat("/dev/kvm", &st) == 0 && (st.st_mode & 006) != 006) j.identity.extra_group = st.st_gid;
  }
  MOAT_TRY(tree.add_bind("kernel", spec.kernel));
  MOAT_TRY(tree.add_bind("initrd", spec.initrd));
  spec.kernel = "/kernel";
  spec.initrd = "/initrd";
  if (!spec.ram_file.empty()) {
    MOAT_TRY(check_readable_by("the memory snapshot's RAM file", spec.ram_file, j.identity.uid));
    MOAT_TRY(tree.add_bind("ram", spec.ram_file));
    MOAT_TRY(tree.add_bind("read-only-ram.so", spec.ram_open_preload));
    spec.ram_file = "/ram";
    spec.ram_open_preload = "/read-only-ram.so";
  }
  // QEMU opens its RAM's memfd as /proc/self/fd/N; this /proc shows only
  // QEMU's own PID namespace, that is QEMU.
  if (spec.ram_fd >= 0) tree.add_proc("proc");
  j.root = tree.prepare();
  j.namespaces = jail::kQemuNamespaces;
  return j;
}

}  // namespace moat::shim
