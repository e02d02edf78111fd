#include "sandbox/lifecycle.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "jail/cgroup.h"
#include "proto/boot_args.h"
#include "sandbox/agent_connection.h"
#include "sandbox/boot_template.h"
#include "sandbox/file_lock.h"
#include "sandbox/object_name.h"
#include "sandbox/image_root.h"
#include "sandbox/root_disks.h"
#include "sandbox/root_patches.h"
#include "sandbox/shim_launcher.h"
#include "sandbox/snapshot_restore.h"
#include "sandbox/volumes.h"
#include "proto/text.h"
#include "shim_contract/sandbox_layout.h"
#include "shim_contract/shim_config.h"
#include "store/guest_path.h"
#include "store/moat_home.h"
#include "sandbox/secrets.h"
#include "sandbox/tls_trust.h"
#include "vm/accel.h"
#include "util/runtime_settings.h"
#include "vm/runtime_files.h"

namespace moat {
namespace sandbox {
namespace {

constexpr Duration kMaxWait = std::chrono::hours(24);
constexpr Duration kMaxLimit = std::chrono::hours(366 * 24);

Status validate(const SandboxOptions& o) {
  if (o.cpus < 1 || o.cpus > 64) return make_error("--cpus must be between 1 and 64", EINVAL);
  if (o.cpu_weight < 1 || o.cpu_weight > 10000) return make_error("--cpu-weight must be between 1 and 10000", EINVAL);
  if (o.io_weight > 10000) return make_error("--io-weight must be between 1 and 10000", EINVAL);
  if (o.memory_mib < 64 || o.memory_mib > 256 * 1024)
    return make_error("--memory must be between 64 and 262144 MiB", EINVAL);
  if (o.disk_size_mib < 64 || o.disk_size_mib > (16ull << 20))
    return make_error("--disk-size must be between 64 MiB and 16 TiB", EINVAL);
  if (o.boot_timeout < std::chrono::seconds(1) || o.boot_timeout > kMaxWait)
    return make_error("boot timeout must be between 1 s and a day", EINVAL);
  MOAT_TRY(stop_timeout_ms(o.stop_timeout));
  for (Duration limit : {o.idle_timeout, o.max_duration}) {
    if (limit < Duration::zero() || limit > kMaxLimit)
      return make_error("--idle-timeout and --max-duration must be at most a year", EINVAL);
    // The shim checks its limits once a second.
    if (limit % std::chrono::seconds(1) != Duration::zero())
      return make_error("--idle-timeout and --max-duration are whole seconds", EINVAL);
  }
  if (!o.image.empty() && (!o.rootfs_dir.empty() || !o.rootfs_image.empty()))
    return make_error("give an image or a root filesystem (--rootfs-dir, --rootfs-image), not both", EINVAL);
  if (!o.rootfs_share.empty()) {
    if (!o.image.empty() || !o.rootfs_dir.empty() || !o.rootfs_image.empty() || o.writable_root || !o.from_snapshot.empty())
      return make_error("a shared root directory excludes an image, --rootfs-dir, --rootfs-image and a snapshot", EINVAL);
    if (!o.patches.empty()) return make_error("root patches need a disk root, not a shared root directory", EINVAL);
    if (o.network.tls.enabled || !o.secrets.empty())
      return make_error("TLS interception and secrets need an image or --rootfs-dir root, not a shared root directory", EINVAL);
  }
  if (!o.hostname.empty()) {
    if (auto st = proto::check_hostname(o.hostname); !st) return st.error().wrap("--hostname");
  }
  MOAT_TRY(validate_network(o.network));
  MOAT_TRY(validate_secrets(o.secrets));
  if (o.log_max_bytes != 0 && (o.log_max_bytes < shim::kMinLogBytes || o.log_max_bytes > shim::kMaxLogBytes))
    return make_error("--log-size must be between 4k and 1g", EINVAL);
  return validate_labels(o.labels);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Polls until nobody holds `path` (a shim's lifetime lock), up to timeout_ms.
bool wait_unlocked(const std::string& path, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    auto locked = is_locked(path);
    if (locked && !*locked) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

Status remove_everything(Manager& m, const SandboxRecord& r) {
  MOAT_TRY(store::remove_tree(m.dir_of(r.info.id)));
  // QEMU's group, if a killed shim left it (shim/qemu_jail.h names it);
  // without cgroups there is none to remove.
  (void)jail::remove_cgroup("moat-" + r.info.id);
  MOAT_TRY(m.db->remove(r.info.id));
  // Last: until the record is gone, the sandbox may still boot the image.
  return release_image(m.home, image_user_of_sandbox(r.info.id));
}

namespace {

// What the shim left: why it ended. No record means the shim itself died.
std::pair<SandboxState, std::string> outcome_of(const std::string& dir) {
  auto e = shim::read_shim_exit(dir);
  if (!e) return {SandboxState::kCrashed, "the shim was killed"};
  return {e->clean ? SandboxState::kStopped : SandboxState::kCrashed, e->reason};
}

bool running(const SandboxRecord& r) { return r.state != kStateCreating && r.info.state == SandboxState::kRunning; }

// The pid the shim wrote beside its lock (0 if unreadable). A shim writes it
// just after taking the lock, so a missing file is waited for briefly.
pid_t shim_pid_of(const std::string& dir) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (true) {
    if (pid_t pid = shim::read_shim_pid(dir)) return pid;
    if (std::chrono::steady_clock::now() >= deadline) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// A start killed after it launched the shim leaves a live shim behind a
// record that still says created or stopped. The shim is the truth: the
// record says running again, so stop, rm -f and start all see it. (A shim
// still booting ends itself once it sees its starter gone.)
Result<std::optional<SandboxRecord>> adopt_shim(Manager& m, SandboxRecord r, const std::string& dir) {
  pid_t pid = shim_pid_of(dir);
  std::int64_t now = unix_now();
  MOAT_TRY(m.db->mark_running(r.info.id, pid, now));
  r.state = to_string(SandboxState::kRunning);
  r.info.state = SandboxState::kRunning;
  r.info.shim_pid = pid;
  r.info.started_at = now;
  r.info.reason.clear();
  return std::optional<SandboxRecord>(std::move(r));
}

Result<std::optional<SandboxRecord>> settle(Manager& m, SandboxRecord r) {
  std::string dir = m.dir_of(r.info.id);
  if (r.state == kStateCreating) {
    MOAT_TRY(remove_everything(m, r));
    return std::optional<SandboxRecord>{};
  }
  MOAT_ASSIGN_OR_RETURN(bool shim_alive, is_locked(shim::shim_lock_path(dir)));
  if (shim_alive && !running(r)) return adopt_shim(m, std::move(r), dir);
  if (shim_alive || !running(r)) return std::optional<SandboxRecord>(std::move(r));
  if (r.info.auto_remove) {
    MOAT_TRY(remove_everything(m, r));
    return std::optional<SandboxRecord>{};
  }
  // A shim killed outright leaves its socket and pid file behind.
  ::unlink(shim::control_socket_path(dir).c_str());
  ::unlink(shim::shim_pid_path(dir).c_str());
  auto [state, reason] = outcome_of(dir);
  MOAT_TRY(m.db->mark_finished(r.info.id, state, reason, unix_now()));
  if (state == SandboxState::kCrashed)
    util::runtime_log(LogLevel::kWarning, "sandbox " + r.info.name + " crashed: " + reason);
  r.state = to_string(state);
  r.info.state = state;
  r.info.reason = reason;
  r.info.shim_pid = 0;
  return std::optional<SandboxRecord>(std::move(r));
}

std::string default_hostname(const std::string& id) { return "moat-" + id; }

// The VM half of a new record: what the options say that SandboxInfo does
// not keep, the accelerator resolved once so that every start boots alike.
Result<VmRecord> vm_record_for(const SandboxOptions& o, const std::string& id, std::string* accel_reason) {
  MOAT_ASSIGN_OR_RETURN(auto accel, vm::choose_accel(o.accel, vm::probe_kvm()));
  if (accel_reason) *accel_reason = accel.reason;
  VmRecord v;
  v.stored = true;
  v.hostname = o.hostname.empty() ? default_hostname(id) : o.hostname;
  v.accel = accel.accel;
  v.boot_timeout_ms = static_cast<int>(o.boot_timeout.count());
  v.stop_timeout_ms = static_cast<int>(o.stop_timeout.count());
  v.log_max_bytes = o.log_max_bytes;
  return v;
}

// The shim's config.json, derived from the record alone plus where the
// runtime files are now (a rebuilt kernel may have moved; the disks have not).
Result<shim::ShimConfig> shim_config_for(const Manager& m, const SandboxRecord& r) {
  shim::ShimConfig cfg;
  MOAT_ASSIGN_OR_RETURN(cfg.vm.qemu, vm::find_qemu());
  MOAT_ASSIGN_OR_RETURN(cfg.vm.kernel, vm::find_kernel());
  MOAT_ASSIGN_OR_RETURN(cfg.vm.initrd, vm::find_initramfs());
  cfg.sandbox_id = r.info.id;
  cfg.dir = m.dir_of(r.info.id);
  cfg.boot_timeout_ms = r.vm.boot_timeout_ms;
  cfg.stop_timeout_ms = r.vm.stop_timeout_ms;
  cfg.idle_timeout_s = whole_seconds(r.info.idle_timeout);
  cfg.max_duration_s = whole_seconds(r.info.max_duration);
  cfg.vm.accel = r.vm.accel;
  cfg.vm.cpus = r.info.cpus;
  cfg.vm.cpu_weight = r.info.cpu_weight;
  cfg.vm.io_weight = r.info.io_weight;
  cfg.vm.memory_mib = r.info.memory_mib;
  cfg.vm.hostname = r.vm.hostname;
  cfg.vm.disks = r.vm.disks;
  if (!r.vm.root_mode.empty()) cfg.vm.root_mode = r.vm.root_mode;
  if (!r.vm.lower_fs.empty()) cfg.vm.lower_fs = r.vm.lower_fs;
  if (r.vm.log_max_bytes != 0) cfg.log_max_bytes = r.vm.log_max_bytes;
  cfg.network = r.info.network;
  MOAT_TRY(add_sandbox_mounts(m.home, r.info.volumes, r.info.tmpfs, cfg));
  return cfg;
}

// A record from before the VM settings were kept in moat.db has them only
// in the config.json its create wrote: adopt them into the record, once.
Status adopt_stored_vm_settings(Manager& m, SandboxRecord& r, const shim::ShimConfig& old) {
  r.vm.stored = true;
  r.vm.hostname = old.vm.hostname;
  r.vm.accel = old.vm.accel;
  r.vm.boot_timeout_ms = old.boot_timeout_ms;
  r.vm.stop_timeout_ms = old.stop_timeout_ms;
  r.vm.log_max_bytes = old.log_max_bytes;
  r.vm.disks = old.vm.disks;
  r.vm.root_mode = old.vm.root_mode;
  r.vm.lower_fs = old.vm.lower_fs;
  return m.db->update_spec(r);
}

// What start hands the shim. extra_qemu_args and extra_kernel_args are the
// fields not derived: experimenters' knobs edited into config.json by hand
// (bench/volume.sh, moat.debug=1), so they are carried over from the file as
// it stands.
Result<shim::ShimConfig> start_config(Manager& m, SandboxRecord& r, bool ephemeral) {
  auto old = shim::read_shim_config(shim::config_path(m.dir_of(r.info.id)));
  if (!r.vm.stored) {
    if (!old) return old.error().wrap("sandbox " + r.info.name + " (made by an older moat)");
    MOAT_TRY(adopt_stored_vm_settings(m, r, *old));
  }
  MOAT_ASSIGN_OR_RETURN(auto cfg, shim_config_for(m, r));
  MOAT_TRY(check_device_slots(cfg));
  if (old) {
    cfg.vm.extra_qemu_args = old->vm.extra_qemu_args;
    cfg.vm.extra_kernel_args = old->vm.extra_kernel_args;
  }
  cfg.stop_when_owner_leaves = ephemeral;
  cfg.remove_dir_on_exit = r.info.auto_remove;
  cfg.discard_on_stop = r.info.auto_remove && cfg.vm.root_mode == "overlay";
  std::string dir = m.dir_of(r.info.id);
  // A boot changed by hand-added arguments (config.json) is not the boot
  // its kind's sandboxes would have: it makes no template.
  if (!cfg.vm.extra_kernel_args.empty() || !cfg.vm.extra_qemu_args.empty()) forget_boot_template(dir);
  // A warm start's template: one that does not load leaves the directory
  // for the cold boot that follows; the first boot of its kind keeps the
  // RAM where it can be saved apart as the template.
  cfg.keep_dir_if_restore_fails = restores_boot_template(dir);
  cfg.keep_ram_apart = makes_boot_template(dir);
  // Paused to disk (pause.cpp), or given a saved VM: the VM goes on from
  // its saved state.
  if (std::string state = shim::memory_state_path(dir); exists(state)) {
    cfg.restore_from = state;
    std::string own = shim::memory_ram_path(dir);
    std::string shared = shim::shared_ram_path(dir);
    if (exists(shared)) {
      cfg.restore_ram = shared;
      // A memory snapshot's children map its RAM private and share its
      // pages (a warm fork's point). A warm start's sandbox that outlives
      // its run is an ordinary sandbox, which may be snapshotted or forked
      // warm itself: its RAM is read into the shim's memfd, so that its own
      // saves keep the RAM apart; one removed when it stops maps it.
      cfg.restore_ram_shared = !cfg.keep_dir_if_restore_fails || r.info.auto_remove;
    } else if (exists(own)) {
      cfg.restore_ram = own;
    }
  }
  return cfg;
}

// Fills the record's root and process defaults from the image, or from the
// options alone for a directory or image-file root.
Status resolve_root(Manager& m, const SandboxOptions& o, SandboxOptions& effective, SandboxInfo& info,
                    const UpperSource* upper) {
  if (o.image.empty()) {
    info.command = o.entrypoint ? *o.entrypoint : std::vector<std::string>{};
    info.command.insert(info.command.end(), o.command.begin(), o.command.end());
    return ok_status();
  }
  MOAT_ASSIGN_OR_RETURN(auto root, resolve_image_root(m.home, o, image_user_of_sandbox(info.id)));
  effective.rootfs_image = root.erofs_path;
  // As Docker does, a WorkingDir the image lacks is created (root, 0755).
  // The config is untrusted: a WorkingDir that is not a clean absolute path
  // is an error here rather than a surprise in the guest.
  if (!root.workdir.empty()) {
    auto parts = store::split_guest_path(root.workdir);
    if (!parts || root.workdir[0] != '/') return make_error("the image's WorkingDir \"" + root.workdir + "\" is not a usable absolute path", EINVAL);
    root.workdir = store::join_guest_path(*parts);
  }
  // An upper copied from another sandbox already holds what its create made.
  if (!upper && !root.workdir.empty() && root.workdir != "/") {
    MOAT_ASSIGN_OR_RETURN(bool has_workdir, lower_has_path(root.erofs_path, root.workdir));
    if (!has_workdir) {
      RootPatch mkdir;
      mkdir.kind = RootPatch::Kind::kMkdir;
      mkdir.guest_path = root.workdir;
      effective.patches.insert(effective.patches.begin(), mkdir);
    }
  }
  info.image = o.image;
  info.image_digest = root.manifest_digest;
  info.command = sandbox_command(root, o);
  info.env = root.env;
  info.workdir = root.workdir;
  info.user = root.user;
  return ok_status();
}

// Resolves the root, makes the disks and records how the VM is made. The
// config.json written here is derived from the record like every start's
// (it is there for inspection before the first start).
// What a sandbox that intercepts TLS adds to its guest: the CA to trust
// (empty: none) and the secrets' placeholders.
struct GuestTlsSetup {
  std::string ca_pem;
  std::vector<std::string> secret_env;
};

Status prepare_sandbox_dir(Manager& m, const SandboxOptions& o, SandboxRecord& r, const GuestTlsSetup& tls,
                           std::string* accel_reason, const UpperSource* upper) {
  const std::string& ca_pem = tls.ca_pem;
  SandboxOptions effective = o;
  MOAT_TRY(resolve_root(m, o, effective, r.info, upper));
  if (upper && !upper->image_display.empty()) r.info.image = upper->image_display;
  MOAT_ASSIGN_OR_RETURN(r.vm, vm_record_for(o, r.info.id, accel_reason));
  // Before the disks: bad mounts and missing runtime files fail cheaply.
  MOAT_ASSIGN_OR_RETURN(auto cfg, shim_config_for(m, r));
  MOAT_TRY(prepare_root_disks(effective, r.info.dir, store::cache_dir(m.home), cfg.vm, upper ? upper->disk : ""));
  MOAT_TRY(check_device_slots(cfg));
  if (!ca_pem.empty()) {
    if (cfg.vm.root_mode != "overlay" || cfg.vm.lower_fs != "erofs" || cfg.vm.disks.empty())
      return make_error("TLS interception (--tls-intercept, --secret) needs an image or --rootfs-dir root: the guest's trust is written into it",
                        EINVAL);
    auto trust = tls_trust_for(cfg.vm.disks[0].path, ca_pem);
    if (!trust) return trust.error().wrap("making the guest trust the TLS interception CA");
    // Before the user's patches, which may replace a bundle on purpose.
    effective.patches.insert(effective.patches.begin(), trust->patches.begin(), trust->patches.end());
    r.info.env.insert(r.info.env.end(), trust->env.begin(), trust->env.end());
  }
  r.info.env.insert(r.info.env.end(), tls.secret_env.begin(), tls.secret_env.end());
  MOAT_TRY(apply_root_patches(effective, cfg.vm));
  r.vm.disks = cfg.vm.disks;
  r.vm.root_mode = cfg.vm.root_mode;
  r.vm.lower_fs = cfg.vm.lower_fs;
  // A fresh upper may come warm instead (sandbox/boot_template.h).
  if (!upper) attach_boot_template(m, boot_template_key(o, r, cfg, !ca_pem.empty()), r.info.dir);
  return shim::write_shim_config(cfg, shim::config_path(r.info.dir));
}

// Asks the shim to stop (it kills the VM after timeout_ms) and waits until
// it is gone. A shim that does not answer is signalled.
}  // namespace

Status stop_shim(const SandboxRecord& r, const std::string& dir, int timeout_ms, bool disk_discarded) {
  std::string lock = shim::shim_lock_path(dir);
  auto conn = AgentConnection::connect(shim::control_socket_path(dir));
  if (conn) {
    proto::Json p = {{"timeout_ms", timeout_ms}};
    if (disk_discarded) p["discard_disk"] = true;
    if (conn->send(proto::make_message(proto::kControlStream, proto::msg::kStop, p))) {
      // The shim closes the connection only after everything is torn down.
      while (true) {
        auto msg = conn->receive(timeout_ms + 10000);
        if (!msg || !*msg) break;
      }
    }
  }
  if (wait_unlocked(lock, conn ? 5000 : 0)) return ok_status();
  // The lock is still held, so shim.pid names the shim that holds it.
  pid_t pid = r.info.shim_pid > 1 ? r.info.shim_pid : shim_pid_of(dir);
  if (pid > 1) ::kill(pid, SIGTERM);
  if (wait_unlocked(lock, timeout_ms + 5000)) return ok_status();
  if (pid > 1) ::kill(pid, SIGKILL);
  if (wait_unlocked(lock, 5000)) return ok_status();
  return make_error("the shim of sandbox " + r.info.id + " does not stop");
}

namespace {

Result<SandboxRecord> require(Result<std::optional<SandboxRecord>> r, const std::string& id_or_name) {
  if (!r) return r.error();
  if (!*r) return make_error("no such sandbox: " + id_or_name, ENOENT);
  return std::move(**r);
}

}  // namespace

Status validate_labels(const std::map<std::string, std::string>& labels) {
  constexpr std::size_t kMaxLabels = 64;
  constexpr std::size_t kMaxLabelBytes = 4096;
  if (labels.size() > kMaxLabels) return make_error("too many labels (at most 64)", EINVAL);
  for (const auto& [k, v] : labels) {
    if (k.empty() || k.find('=') != std::string::npos || k.size() + v.size() > kMaxLabelBytes)
      return make_error("bad label \"" + k + "\": keys are non-empty, without '=', under 4 KiB with the value",
                        EINVAL);
    // Labels are metadata people read and filter on, printed as JSON text.
    if (!proto::is_utf8(k) || !proto::is_utf8(v))
      return make_error("bad label \"" + proto::lossy_utf8(k) + "\": keys and values must be UTF-8 text", EINVAL);
  }
  return ok_status();
}

Result<Manager> Manager::open() {
  Manager m;
  MOAT_ASSIGN_OR_RETURN(m.home, store::moat_home());
  MOAT_TRY(store::make_dirs(store::sandboxes_dir(m.home), 0700));
  MOAT_ASSIGN_OR_RETURN(m.db, SandboxDb::open(m.home));
  return m;
}

std::string Manager::dir_of(const std::string& id) const { return store::sandboxes_dir(home) + "/" + id; }

namespace {

// A create makes the directory, then takes its op.lock, then inserts the
// record; this long after, a directory with no record and a free op.lock
// belongs to a create that died before its insert.
constexpr std::chrono::seconds kOrphanAge{10};

bool older_than(const struct stat& st, std::chrono::seconds age) {
  return ::time(nullptr) - st.st_mtime >= age.count();
}

}  // namespace

Status remove_orphan_dirs(Manager& m) {
  std::string root = store::sandboxes_dir(m.home);
  DIR* d = ::opendir(root.c_str());
  if (!d) return errno_error("open " + root);
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(d);
  for (const auto& id : names) {
    std::string dir = root + "/" + id;
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || !older_than(st, kOrphanAge)) continue;
    MOAT_ASSIGN_OR_RETURN(auto record, m.db->find(id));
    if (record) continue;
    MOAT_ASSIGN_OR_RETURN(auto lock, FileLock::try_acquire(shim::op_lock_path(dir)));
    if (!lock) continue;  // its create is still under way
    // A shim that still runs there is not ours to end blindly: leave it.
    MOAT_ASSIGN_OR_RETURN(bool shim_runs, is_locked(shim::shim_lock_path(dir)));
    MOAT_ASSIGN_OR_RETURN(auto again, m.db->find(id));
    if (shim_runs || again) continue;
    MOAT_TRY(store::remove_tree(dir));
    util::runtime_log(LogLevel::kInfo, "removed " + dir + ": no sandbox record names it");
  }
  return ok_status();
}

Result<std::optional<SandboxRecord>> reconcile(Manager& m, SandboxRecord r, bool op_locked) {
  // A record that says created, stopped or crashed is true unless a shim
  // holds its lock anyway (settle adopts it).
  if (r.state != kStateCreating && !running(r)) {
    MOAT_ASSIGN_OR_RETURN(bool shim_alive, is_locked(shim::shim_lock_path(m.dir_of(r.info.id))));
    if (!shim_alive) return std::optional<SandboxRecord>(std::move(r));
  }
  if (op_locked) return settle(m, std::move(r));
  std::string dir = m.dir_of(r.info.id);
  if (!exists(dir)) {
    // Nothing left to lock: the record is all that remains.
    if (r.state == kStateCreating || r.info.auto_remove) {
      MOAT_TRY(m.db->remove(r.info.id));
      return std::optional<SandboxRecord>{};
    }
    MOAT_TRY(m.db->mark_finished(r.info.id, SandboxState::kCrashed, "its directory is gone", unix_now()));
    r.info.state = SandboxState::kCrashed;
    r.state = to_string(r.info.state);
    return std::optional<SandboxRecord>(std::move(r));
  }
  MOAT_ASSIGN_OR_RETURN(auto lock, FileLock::try_acquire(shim::op_lock_path(dir)));
  if (!lock) return std::optional<SandboxRecord>(std::move(r));  // an operation is under way
  // Re-read under the lock: the operation that held it may have changed it.
  MOAT_ASSIGN_OR_RETURN(auto fresh, m.db->find(r.info.id));
  if (!fresh) return std::optional<SandboxRecord>{};
  return settle(m, std::move(*fresh));
}

Result<Locked> lock_sandbox(Manager& m, const std::string& id_or_name) {
  auto gone = [&] { return make_error("no such sandbox: " + id_or_name, ENOENT); };
  MOAT_ASSIGN_OR_RETURN(auto found, m.db->find(id_or_name));
  if (!found) return gone();
  auto lock = FileLock::acquire(shim::op_lock_path(m.dir_of(found->info.id)));
  if (!lock) return lock.error().code == ENOENT ? gone() : lock.error();  // removed meanwhile
  // Another operation may have changed or removed it while we waited.
  MOAT_ASSIGN_OR_RETURN(auto fresh, m.db->find(found->info.id));
  if (!fresh) return gone();
  MOAT_ASSIGN_OR_RETURN(auto r, require(reconcile(m, std::move(*fresh), true), id_or_name));
  return Locked{std::move(*lock), std::move(r)};
}

Result<SandboxRecord> find_sandbox(Manager& m, const std::string& id_or_name) {
  MOAT_ASSIGN_OR_RETURN(auto found, m.db->find(id_or_name));
  if (!found) return make_error("no such sandbox: " + id_or_name, ENOENT);
  MOAT_ASSIGN_OR_RETURN(auto r, require(reconcile(m, std::move(*found), false), id_or_name));
  note_paused(m, r);
  return r;
}

// Whether a running sandbox is paused is its shim's to say (the marker it
// keeps while QEMU's vCPUs are stopped); the record does not hold it. One
// that is not running is saved when its shim left the VM's state behind.
void note_paused(Manager& m, SandboxRecord& r) {
  bool settled = r.state != kStateCreating;
  bool running = settled && r.info.state == SandboxState::kRunning;
  r.info.paused = running && exists(shim::paused_marker_path(m.dir_of(r.info.id)));
  r.info.saved = settled && !running && shim::has_saved_vm(m.dir_of(r.info.id));
}

Result<PendingCreate> create_pending(Manager& m, const SandboxOptions& o, std::string* accel_reason,
                                     const UpperSource* upper) {
  MOAT_TRY(validate(o));
  if (!o.name.empty() && !valid_object_name(o.name))
    return make_error("invalid name \"" + o.name + "\": use letters, digits, '_', '.', '-' (at most 64, starting "
                      "with a letter or digit)", EINVAL);
  SandboxRecord r;
  r.state = kStateCreating;
  r.info.id = store::random_id(12);
  r.info.name = o.name.empty() ? r.info.id : o.name;
  r.info.dir = m.dir_of(r.info.id);
  r.info.created_at = unix_now();
  r.info.labels = o.labels;
  r.info.cpus = o.cpus;
  r.info.cpu_weight = o.cpu_weight;
  r.info.io_weight = o.io_weight;
  r.info.memory_mib = o.memory_mib;
  r.info.disk_size_mib = upper ? upper->disk_size_mib : o.disk_size_mib;
  if (upper) r.info.snapshot = upper->snapshot_id;
  r.info.idle_timeout = o.idle_timeout;
  r.info.max_duration = o.max_duration;
  r.info.auto_remove = o.auto_remove;
  r.info.network = o.network;
  GuestTlsSetup tls;
  if (r.info.network.tls.enabled || !o.secrets.empty()) {
    MOAT_ASSIGN_OR_RETURN(tls.ca_pem, settle_tls_ca(m.home, r.info.network.tls));
  }
  PreparedSecrets secrets;
  if (!o.secrets.empty()) {
    MOAT_ASSIGN_OR_RETURN(secrets, prepare_secrets(o.secrets, o.on_secret_violation));
    tls.secret_env = secrets.env;
  }
  MOAT_ASSIGN_OR_RETURN(r.info.tmpfs, resolve_tmpfs_mounts(o.tmpfs));
  // The record names its volumes from the start, under the volumes lock:
  // a volume removal either sees this sandbox or runs before it exists.
  MOAT_ASSIGN_OR_RETURN(auto volumes_lock, FileLock::acquire(volumes_lock_path(m.home)));
  MOAT_ASSIGN_OR_RETURN(r.info.volumes, resolve_volume_mounts(m.home, o.volumes, r.info.tmpfs));
  if (!o.rootfs_share.empty()) {
    // The root is the volume at "/", first, so its tag is fixed (vol0) and
    // the agent mounts it before switching into it.
    MOAT_ASSIGN_OR_RETURN(auto root, root_share_mount(o.rootfs_share, o.rootfs_share_read_only, r.info.volumes.size() + r.info.tmpfs.size()));
    r.info.volumes.insert(r.info.volumes.begin(), std::move(root));
  }
  if (::mkdir(r.info.dir.c_str(), 0700) != 0) return errno_error("create " + r.info.dir);
  auto lock = FileLock::acquire(shim::op_lock_path(r.info.dir));
  if (!lock) {
    (void)store::remove_tree(r.info.dir);
    return lock.error();
  }
  if (auto st = m.db->insert(r); !st) {
    (void)store::remove_tree(r.info.dir);
    return st.error();
  }
  volumes_lock.release();
  Status prepared = ok_status();
  if (!secrets.file.secrets.empty()) prepared = shim::write_secrets(r.info.dir, secrets.file);
  if (prepared) prepared = prepare_sandbox_dir(m, o, r, tls, accel_reason, upper);
  if (prepared) prepared = m.db->update_spec(r);
  if (!prepared) {
    (void)remove_everything(m, r);
    return prepared.error();
  }
  return PendingCreate{std::move(r), std::move(*lock)};
}

Result<SandboxInfo> create_record(Manager& m, const SandboxOptions& o, std::string* accel_reason,
                                  const UpperSource* upper) {
  if (!o.from_snapshot.empty()) return create_from_snapshot(m, o, accel_reason);
  MOAT_ASSIGN_OR_RETURN(auto pending, create_pending(m, o, accel_reason, upper));
  SandboxRecord& r = pending.record;
  if (auto st = m.db->mark_created(r.info.id); !st) {
    (void)remove_everything(m, r);
    return st.error();
  }
  r.info.state = SandboxState::kCreated;
  return r.info;
}

Status start_record(Manager& m, const std::string& id_or_name, bool ephemeral) {
  MOAT_ASSIGN_OR_RETURN(auto locked, lock_sandbox(m, id_or_name));
  return start_locked(m, locked, id_or_name, ephemeral);
}

Status start_locked(Manager& m, Locked& locked, const std::string& id_or_name, bool ephemeral) {
  SandboxRecord& r = locked.record;
  std::string dir = m.dir_of(r.info.id);
  if (r.state == kStateCreating) return make_error("sandbox " + id_or_name + " is still being created", EBUSY);
  if (r.info.state == SandboxState::kRunning)
    return make_error("sandbox " + id_or_name + " is already running", EBUSY);

  MOAT_ASSIGN_OR_RETURN(auto shim_bin, vm::find_shim());
  auto launch = [&]() -> Result<pid_t> {
    MOAT_ASSIGN_OR_RETURN(auto cfg, start_config(m, r, ephemeral));
    MOAT_TRY(shim::write_shim_config(cfg, shim::config_path(dir)));
    ::unlink(shim::last_exit_path(dir).c_str());
    ::unlink(shim::shim_pid_path(dir).c_str());  // a killed shim's: the new one writes its own
    // The record says running before the shim exists: from here on a shim
    // may run, and a caller killed at any point leaves a record reconcile
    // checks against the shim's lock (pid 0 until known: stop reads
    // shim.pid).
    MOAT_TRY(m.db->mark_running(r.info.id, 0, unix_now()));
    return launch_shim(shim_bin, dir, cfg.boot_timeout_ms + 15000);
  };
  auto pid = launch();
  // A warm start whose template did not load boots afresh (the template
  // is gone with it).
  if (!pid && pid.error().code != ECANCELED) {
    (void)stop_shim(r, dir, 0);
    if (drop_failed_boot_template(m, dir)) pid = launch();
  }
  if (!pid) {
    forget_boot_template(dir);
    // A shim that did not answer in time may still run: end it first
    // (stop_shim returns at once when none holds the lock).
    (void)stop_shim(r, dir, 0);
    if (r.info.auto_remove) {
      (void)remove_everything(m, r);
    } else {
      (void)m.db->mark_finished(r.info.id, SandboxState::kCrashed, pid.error().message, unix_now());
    }
    return pid.error().wrap("starting sandbox " + r.info.name);
  }
  boot_template_used(dir);
  return m.db->mark_running(r.info.id, *pid, unix_now());
}

// A stop of a sandbox paused to disk: its saved VM state goes, and the next
// start boots afresh.
Status discard_saved_state(Manager& m, const SandboxRecord& r) {
  std::string dir = m.dir_of(r.info.id);
  std::string state = shim::memory_state_path(dir);
  if (!exists(state)) return ok_status();
  for (const auto& ram : {shim::memory_ram_path(dir), shim::shared_ram_path(dir)})
    if (::unlink(ram.c_str()) != 0 && errno != ENOENT) return errno_error("removing " + ram);
  if (::unlink(state.c_str()) != 0 && errno != ENOENT) return errno_error("removing " + state);
  return m.db->mark_finished(r.info.id, SandboxState::kStopped, "stopped while paused to disk: its saved state was discarded",
                             unix_now());
}

Result<int> stop_timeout_ms(Duration timeout) {
  if (timeout < Duration::zero() || timeout > kMaxWait)
    return make_error("stop timeout must be between 0 and a day", EINVAL);
  return static_cast<int>(timeout.count());
}

Status stop_record(Manager& m, const std::string& id_or_name, int timeout_ms) {
  MOAT_ASSIGN_OR_RETURN(auto locked, lock_sandbox(m, id_or_name));
  SandboxRecord& r = locked.record;
  std::string dir = m.dir_of(r.info.id);
  if (r.info.state != SandboxState::kRunning) return discard_saved_state(m, r);
  MOAT_TRY(stop_shim(r, dir, timeout_ms));
  MOAT_TRY(reconcile(m, std::move(r), true));
  return ok_status();
}

}  // namespace sandbox

Result<SandboxInfo> create_sandbox(const SandboxOptions& o) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  return sandbox::create_record(m, o);
}

Status start_sandbox(const std::string& id_or_name) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  MOAT_TRY(sandbox::start_record(m, id_or_name, /*ephemeral=*/false));
  sandbox::make_boot_template_if_wanted(m, id_or_name);
  return ok_status();
}

Status stop_sandbox(const std::string& id_or_name, Duration timeout) {
  MOAT_ASSIGN_OR_RETURN(int timeout_ms, sandbox::stop_timeout_ms(timeout));
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  return sandbox::stop_record(m, id_or_name, timeout_ms);
}

Status restart_sandbox(const std::string& id_or_name, Duration timeout) {
  MOAT_TRY(stop_sandbox(id_or_name, timeout));
  return start_sandbox(id_or_name);
}

Status remove_sandbox(const std::string& id_or_name, bool force) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  MOAT_ASSIGN_OR_RETURN(auto locked, sandbox::lock_sandbox(m, id_or_name));
  sandbox::SandboxRecord& r = locked.record;
  std::string dir = m.dir_of(r.info.id);
  if (r.info.state == SandboxState::kRunning) {
    if (!force)
      return make_error("sandbox " + id_or_name + " is running; stop it first, or remove it with -f", EBUSY);
    MOAT_TRY(sandbox::stop_shim(r, dir, 0, /*disk_discarded=*/true));
  }
  return sandbox::remove_everything(m, r);
}

Result<SandboxInfo> inspect_sandbox(const std::string& id_or_name) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  MOAT_ASSIGN_OR_RETURN(auto r, sandbox::find_sandbox(m, id_or_name));
  return r.info;
}

Result<std::vector<SandboxInfo>> list_sandboxes(const std::map<std::string, std::string>& labels) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  MOAT_TRY(sandbox::remove_orphan_dirs(m));
  MOAT_ASSIGN_OR_RETURN(auto all, m.db->list());
  std::vector<SandboxInfo> out;
  for (auto& rec : all) {
    MOAT_ASSIGN_OR_RETURN(auto r, sandbox::reconcile(m, std::move(rec), false));
    if (!r || r->state == sandbox::kStateCreating) continue;
    sandbox::note_paused(m, *r);
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = r->info.labels.find(k);
      match = match && it != r->info.labels.end() && it->second == v;
    }
    if (match) out.push_back(std::move(r->info));
  }
  return out;
}

}  // namespace moat
