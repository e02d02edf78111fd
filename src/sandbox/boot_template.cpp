#include "sandbox/boot_template.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <vector>

#include <nlohmann/json.hpp>

#include "image/oci/digest.h"
#include "moat/network.h"
#include "proto/guest_mount.h"
#include "sandbox/file_lock.h"
#include "sandbox/memory_snapshot.h"
#include "shim_contract/sandbox_layout.h"
#include "store/moat_home.h"
#include "store/sparse_copy.h"
#include "util/read_file.h"
#include "util/runtime_settings.h"
#include "util/write_file_atomic.h"
#include "vm/accel.h"

namespace moat::sandbox {
namespace {

// Templates kept per cache: each holds a RAM file (the pages a boot
// touched, ~20-60 MiB) and a small upper disk.
constexpr std::size_t kKeptTemplates = 8;
// Bumped when what a template holds or how it is used changes.
constexpr char kTemplateFormat[] = "moat-boot-template-1";

std::string use_marker(const std::string& dir) { return dir + "/template.use"; }
std::string make_marker(const std::string& dir) { return dir + "/template.make"; }
std::string template_dir(const std::string& home, const std::string& key) { return templates_dir(home) + "/" + key; }
std::string state_in(const std::string& t) { return t + "/memory.state"; }
std::string ram_in(const std::string& t) { return t + "/memory.ram"; }
std::string upper_in(const std::string& t) { return t + "/upper.ext4"; }

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

long long mtime_ns(const struct stat& st) {
  return static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

bool warm_start_off_for_process() {
  const char* v = std::getenv("MOAT_WARM_START");
  return v && std::string(v) == "0";
}

// A file by what would tell a rebuilt or replaced one apart.
nlohmann::json file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {{"path", path}, {"missing", true}};
  return {{"path", path},
          {"dev", st.st_dev},
          {"ino", st.st_ino},
          {"size", st.st_size},
          {"mtime_ns", mtime_ns(st)}};
}

Result<std::string> read_key(const std::string& marker) {
  MOAT_ASSIGN_OR_RETURN(auto key, read_file_bounded(marker, 128));
  bool hex = key.size() == 32 && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
  if (!hex) return make_error(marker + " does not hold a template key", EINVAL);
  return key;
}

void warn(const std::string& message) { util::runtime_log(LogLevel::kWarning, "warm start: " + message); }

// Removes template directory `t` and its lock file; the caller holds the
// lock.
void remove_template(const std::string& t) {
  (void)store::remove_tree(t);
  ::unlink((t + ".lock").c_str());
}

// Removes the saved VM a sandbox was given from a template, and the marker
// saying so.
void remove_given_vm(const std::string& sandbox_dir) {
  ::unlink(shim::memory_state_path(sandbox_dir).c_str());
  ::unlink(shim::shared_ram_path(sandbox_dir).c_str());
  ::unlink(use_marker(sandbox_dir).c_str());
}

// The newest kKeptTemplates stay (a template's directory time is its last
// use); the others go, unless one is being made or used right now.
void prune_templates(const std::string& home) {
  std::string dir = templates_dir(home);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::vector<std::pair<long long, std::string>> found;
  std::vector<std::string> unfinished;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    // A maker killed before its rename left this (its key's lock is free).
    if (name.starts_with(".making-") && name.size() > 8 + 32) {
      unfinished.push_back(name);
      continue;
    }
    if (name.size() != 32) continue;
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    found.emplace_back(mtime_ns(st), name);
  }
  ::closedir(d);
  for (const auto& name : unfinished) {
    auto lock = FileLock::try_acquire(dir + "/" + name.substr(8, 32) + ".lock");
    if (lock && *lock) (void)store::remove_tree(dir + "/" + name);
  }
  if (found.size() <= kKeptTemplates) return;
  std::sort(found.begin(), found.end(), std::greater<>());
  for (std::size_t i = kKeptTemplates; i < found.size(); ++i) {
    auto lock = FileLock::try_acquire(dir + "/" + found[i].second + ".lock");
    if (lock && *lock) remove_template(dir + "/" + found[i].second);
  }
}

}  // namespace

// In the cache: a template is derived data (from the root, kernel and
// QEMU), like the packed roots beside it, so state directories that share
// a cache share their templates.
std::string templates_dir(const std::string& home) { return store::cache_dir(home) + "/templates"; }

std::string boot_template_key(const SandboxOptions& o, const SandboxRecord& r, const shim::ShimConfig& cfg,
                              bool tls_trust_written) {
  if (!o.warm_start || warm_start_off_for_process()) return "";
  if (!o.patches.empty() || tls_trust_written || !r.info.volumes.empty() || !r.info.snapshot.empty()) return "";
  if (cfg.vm.root_mode != "overlay" || cfg.vm.disks.size() != 2) return "";
  nlohmann::json mounts = nlohmann::json::array();
  for (const auto& m : cfg.vm.mounts) mounts.push_back(proto::encode_guest_mount(m));
  nlohmann::json what = {
      {"format", kTemplateFormat},
      {"lower", file_identity(cfg.vm.disks[0].path)},
      {"root_mode", cfg.vm.root_mode},
      {"lower_fs", cfg.vm.lower_fs},
      {"disk_size_mib", r.info.disk_size_mib},
      {"kernel", file_identity(cfg.vm.kernel)},
      {"initramfs", file_identity(cfg.vm.initrd)},
      {"qemu", file_identity(cfg.vm.qemu)},
      {"accel", vm::accel_name(cfg.vm.accel)},
      {"cpus", cfg.vm.cpus},
      {"memory_mib", cfg.vm.memory_mib},
      {"network_device", network_needs_device(r.info.network)},
      {"mounts", mounts},
  };
  std::string digest = image::sha256_digest(what.dump());
  return digest.substr(image::kSha256Prefix.size(), 32);
}

void attach_boot_template(const Manager& m, const std::string& key, const std::string& sandbox_dir) {
  if (key.empty()) return;
  std::string t = template_dir(m.home, key);
  if (!exists(state_in(t))) {
    if (auto marked = write_file_atomic(make_marker(sandbox_dir), key, 0600); !marked) warn(marked.error().message);
    return;
  }
  // The template's upper beside the fresh one, then the saved VM's links,
  // then the swap: a failure on the way leaves the cold boot as it was.
  std::string upper = shim::upper_disk_path(sandbox_dir);
  std::string copy = upper + ".template";
  Status given = store::sparse_copy(upper_in(t), copy);
  if (given) given = give_saved_vm(state_in(t), ram_in(t), sandbox_dir);
  // A cache on another filesystem than the sandbox: copies instead of
  // links (the RAM's pages are then the sandbox's own, not shared).
  if (!given && given.error().code == EXDEV) {
    ::unlink(shim::memory_state_path(sandbox_dir).c_str());
    given = store::sparse_copy(state_in(t), shim::memory_state_path(sandbox_dir));
    if (given) given = store::sparse_copy(ram_in(t), shim::shared_ram_path(sandbox_dir));
  }
  if (given) given = write_file_atomic(use_marker(sandbox_dir), key, 0600);
  if (given && ::rename(copy.c_str(), upper.c_str()) != 0) given = errno_error("rename " + copy);
  if (!given) {
    // A template removed meanwhile is no news; anything else is.
    if (given.error().code != ENOENT) warn("template " + key + " not used: " + given.error().message);
    ::unlink(copy.c_str());
    remove_given_vm(sandbox_dir);
    return;
  }
  ::utimensat(AT_FDCWD, t.c_str(), nullptr, 0);  // its last use, for pruning
}

bool restores_boot_template(const std::string& dir) {
  return exists(use_marker(dir)) && shim::has_saved_vm(dir);
}

bool makes_boot_template(const std::string& dir) { return exists(make_marker(dir)); }

bool drop_failed_boot_template(const Manager& m, const std::string& dir) {
  if (!restores_boot_template(dir)) return false;
  auto key = read_key(use_marker(dir));
  remove_given_vm(dir);
  if (key) {
    std::string t = template_dir(m.home, *key);
    warn("template " + *key + " could not be restored; it is removed and the sandbox boots afresh");
    if (auto lock = FileLock::acquire(t + ".lock")) remove_template(t);
  }
  return true;
}

void boot_template_used(const std::string& dir) { ::unlink(use_marker(dir).c_str()); }

void forget_boot_template(const std::string& dir) { ::unlink(make_marker(dir).c_str()); }

void make_boot_template_if_wanted(Manager& m, const std::string& id) {
  auto locked = lock_sandbox(m, id);
  if (!locked) return;
  std::string dir = m.dir_of(locked->record.info.id);
  if (!makes_boot_template(dir)) return;
  auto key = read_key(make_marker(dir));
  ::unlink(make_marker(dir).c_str());  // one try: a later start is not a fresh boot
  if (!key) return warn(key.error().message);
  std::string t = template_dir(m.home, *key);
  if (Status made = store::make_dirs(templates_dir(m.home), 0700); !made) return warn(made.error().message);
  auto lock = FileLock::try_acquire(t + ".lock");
  if (!lock) return warn(lock.error().message);
  if (!*lock || exists(t)) return;  // another sandbox makes or made it
  std::string tmp = templates_dir(m.home) + "/.making-" + *key + "-" + store::random_id(8);
  if (::mkdir(tmp.c_str(), 0700) != 0) return warn(errno_error("mkdir " + tmp).message);
  SavedVm to{state_in(tmp), ram_in(tmp), upper_in(tmp)};
  Status saved = save_running_vm(m, locked->record, to, "warm-start template");
  // A template without its RAM apart would load the whole RAM from the
  // stream in every sandbox: not worth keeping.
  if (saved && !exists(to.ram)) saved = make_error("the VM's RAM was not saved apart", EINVAL);
  if (saved && ::rename(tmp.c_str(), t.c_str()) != 0) saved = errno_error("rename " + tmp + " to " + t);
  if (!saved) {
    (void)store::remove_tree(tmp);
    return warn("template " + *key + " not made: " + saved.error().message);
  }
  lock->reset();
  prune_templates(m.home);
}

}  // namespace moat::sandbox
