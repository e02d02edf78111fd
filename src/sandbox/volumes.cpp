#include "sandbox/volumes.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <set>

#include "moat/sandboxes.h"
#include "moat/network.h"
#include "moat/volumes.h"
#include "sandbox/file_lock.h"
#include "sandbox/lifecycle.h"
#include "sandbox/object_name.h"
#include "sandbox/volume_db.h"
#include "proto/text.h"
#include "store/guest_path.h"
#include "store/moat_home.h"
#include "vm/qemu_command.h"

namespace moat {
namespace sandbox {
namespace {

Result<std::string> clean_guest_path(const std::string& path, const char* what) {
  if (path.empty() || path[0] != '/') return make_error(std::string(what) + " \"" + path + "\": the guest path must be absolute", EINVAL);
  // ".." is refused, not resolved: "/data/../etc" would mount over /etc.
  for (std::size_t at = 0; (at = path.find("..", at)) != std::string::npos; at += 2) {
    bool starts = path[at - 1] == '/';
    bool ends = at + 2 == path.size() || path[at + 2] == '/';
    if (starts && ends)
      return make_error(std::string(what) + " \"" + path + "\": the guest path must not contain \"..\"", EINVAL);
  }
  auto parts = store::split_guest_path(path);
  if (!parts) return parts.error().wrap(std::string(what) + " \"" + path + "\"");
  if (parts->empty()) return make_error(std::string(what) + " \"" + path + "\": cannot mount over the guest's /", EINVAL);
  return store::join_guest_path(*parts);
}

Result<std::string> real_directory(const std::string& source) {
  char buf[PATH_MAX];
  if (!::realpath(source.c_str(), buf)) return errno_error("volume source " + source);
  struct stat st {};
  if (::stat(buf, &st) != 0) return errno_error("volume source " + source);
  if (!S_ISDIR(st.st_mode)) return make_error("volume source " + source + " is not a directory", ENOTDIR);
  return std::string(buf);
}

Status make_volume(const std::string& home, VolumeDb& db, const VolumeRecord& r) {
  std::string top = volumes_dir(home) + "/" + r.name;
  MOAT_TRY(store::make_dirs(volumes_dir(home), 0700));
  if (::mkdir(top.c_str(), 0700) != 0 && errno != EEXIST) return errno_error("create " + top);
  // The data directory is what the guest's root sees as the volume's root.
  std::string data = volume_data_path(home, r.name);
  if (::mkdir(data.c_str(), 0755) != 0 && errno != EEXIST) return errno_error("create " + data);
  if (auto st = db.insert(r); !st) {
    if (st.error().code != EEXIST) (void)store::remove_tree(top);
    return st;
  }
  return ok_status();
}

std::vector<std::string> users_of(const std::vector<SandboxRecord>& records, const std::string& volume) {
  std::vector<std::string> out;
  for (const auto& r : records) {
    for (const auto& v : r.info.volumes) {
      if (is_volume_name(v.source) && v.source == volume) {
        out.push_back(r.info.name);
        break;
      }
    }
  }
  return out;
}

VolumeInfo info_of(const std::string& home, const VolumeRecord& r, const std::vector<SandboxRecord>& sandboxes) {
  VolumeInfo i;
  i.name = r.name;
  i.path = volume_data_path(home, r.name);
  i.created_at = r.created_at;
  i.labels = r.labels;
  i.used_by = users_of(sandboxes, r.name);
  return i;
}

struct VolumeContext {
  Manager m;
  std::unique_ptr<VolumeDb> db;
};

Result<VolumeContext> open_volumes() {
  VolumeContext c;
  MOAT_ASSIGN_OR_RETURN(c.m, Manager::open());
  MOAT_ASSIGN_OR_RETURN(c.db, VolumeDb::open(c.m.home));
  return c;
}

}  // namespace

std::string volumes_dir(const std::string& home) { return home + "/volumes"; }
std::string volume_data_path(const std::string& home, const std::string& name) { return volumes_dir(home) + "/" + name + "/data"; }
std::string volumes_lock_path(const std::string& home) { return home + "/volumes.lock"; }

Result<std::vector<TmpfsMount>> resolve_tmpfs_mounts(const std::vector<TmpfsMount>& tmpfs) {
  std::vector<TmpfsMount> out;
  for (const auto& t : tmpfs) {
    MOAT_ASSIGN_OR_RETURN(auto path, clean_guest_path(t.guest_path, "--tmpfs"));
    out.push_back({path, t.size_bytes});
  }
  return out;
}

Result<std::vector<VolumeMount>> resolve_volume_mounts(const std::string& home, const std::vector<VolumeMount>& mounts,
                                                       const std::vector<TmpfsMount>& tmpfs) {
  if (mounts.size() + tmpfs.size() > proto::kMaxGuestMounts)
    return make_error("too many volumes and tmpfs mounts (at most " + std::to_string(proto::kMaxGuestMounts) + ")", EINVAL);
  std::set<std::string> guest_paths;
  for (const auto& t : tmpfs) {
    if (!guest_paths.insert(t.guest_path).second) return make_error("two mounts at " + t.guest_path, EINVAL);
  }
  std::unique_ptr<VolumeDb> db;
  std::vector<VolumeMount> out;
  for (const auto& v : mounts) {
    MOAT_ASSIGN_OR_RETURN(auto path, clean_guest_path(v.guest_path, "volume"));
    if (!guest_paths.insert(path).second) return make_error("two mounts at " + path, EINVAL);
    VolumeMount r{v.source, path, v.read_only, v.size_bytes};
    if (v.size_bytes != 0 && (v.size_bytes < kMinVolumeSize || v.size_bytes > kMaxVolumeSize))
      return make_error("volume for " + path + ": the size limit must be between 4 KiB and 1 PiB", EINVAL);
    if (v.source.empty()) return make_error("volume for " + path + ": no source given", EINVAL);
    if (is_volume_name(v.source)) {
      if (!valid_object_name(v.source))
        return make_error("invalid volume name \"" + v.source + "\": use letters, digits, '_', '.', '-' "
                          "(at most 64, starting with a letter or digit), or give a host path", EINVAL);
      if (!db) {
        MOAT_ASSIGN_OR_RETURN(db, VolumeDb::open(home));
      }
      MOAT_ASSIGN_OR_RETURN(auto found, db->find(v.source));
      // As in Docker, naming a volume that does not exist creates it.
      if (!found) MOAT_TRY(make_volume(home, *db, VolumeRecord{v.source, unix_now(), {}}));
    } else {
      MOAT_ASSIGN_OR_RETURN(r.source, real_directory(v.source));
    }
    out.push_back(std::move(r));
  }
  return out;
}

Result<VolumeMount> root_share_mount(const std::string& directory, bool read_only, std::size_t others) {
  if (others + 1 > proto::kMaxGuestMounts)
    return make_error("too many volumes and tmpfs mounts besides the shared root (at most " +
                          std::to_string(proto::kMaxGuestMounts - 1) + ")", EINVAL);
  if (directory.empty() || directory[0] != '/')
    return make_error("shared root \"" + directory + "\": give an absolute host directory", EINVAL);
  MOAT_ASSIGN_OR_RETURN(auto real, real_directory(directory));
  return VolumeMount{real, "/", read_only, 0};
}

Status check_device_slots(const shim::ShimConfig& cfg) {
  // The shares become vhost-user-fs devices when the shim starts QEMU; the
  // network device too, when the options need one.
  bool network = network_needs_device(cfg.network);
  std::size_t others = vm::kFixedVirtioDevices + cfg.vm.disks.size() + (network ? 1 : 0);
  if (others + cfg.volumes.size() <= vm::kMicrovmVirtioSlots) return ok_status();
  std::size_t room = others >= vm::kMicrovmVirtioSlots ? 0 : vm::kMicrovmVirtioSlots - others;
  return make_error("too many volumes: " + std::to_string(cfg.volumes.size()) + " given, room for " +
                        std::to_string(room) + " (the VM has " + std::to_string(vm::kMicrovmVirtioSlots) +
                        " device slots; the agent's channel and entropy take 2, the root's disks " +
                        std::to_string(cfg.vm.disks.size()) + (network ? ", the network 1" : "") +
                        "; tmpfs mounts take none)",
                    EINVAL);
}

Status add_sandbox_mounts(const std::string& home, const std::vector<VolumeMount>& volumes,
                          const std::vector<TmpfsMount>& tmpfs, shim::ShimConfig& cfg) {
  for (std::size_t i = 0; i < volumes.size(); ++i) {
    const auto& v = volumes[i];
    std::string tag = "vol" + std::to_string(i);
    std::string host = is_volume_name(v.source) ? volume_data_path(home, v.source) : v.source;
    cfg.volumes.push_back({tag, host, v.read_only, v.size_bytes});
    proto::GuestMount m;
    m.kind = proto::GuestMount::Kind::kVirtiofs;
    m.tag = tag;
    m.path = v.guest_path;
    m.read_only = v.read_only;
    cfg.vm.mounts.push_back(m);
  }
  for (const auto& t : tmpfs) {
    proto::GuestMount m;
    m.kind = proto::GuestMount::Kind::kTmpfs;
    m.path = t.guest_path;
    m.size_bytes = t.size_bytes;
    cfg.vm.mounts.push_back(m);
  }
  if (vm::kernel_command_line(cfg.vm).size() > vm::kMaxKernelCommandLine)
    return make_error("the volume and tmpfs paths are too long together for the guest kernel's command line "
                      "(at most about " + std::to_string(vm::kMaxKernelCommandLine / 2 - 200) + " bytes of paths)", EINVAL);
  return ok_status();
}

}  // namespace sandbox

bool is_volume_name(const std::string& source) {
  return !source.empty() && source[0] != '/' && source[0] != '.' && source.find('/') == std::string::npos;
}

Result<VolumeInfo> create_volume(const std::string& name, const std::map<std::string, std::string>& labels) {
  std::string n = name.empty() ? store::random_id(12) : name;
  if (!sandbox::valid_object_name(n))
    return make_error("invalid volume name \"" + n + "\": use letters, digits, '_', '.', '-' (at most 64, starting with a letter or digit)", EINVAL);
  for (const auto& [k, v] : labels) {
    // Labels are metadata people read and filter on, kept as JSON text.
    if (!proto::is_utf8(k) || !proto::is_utf8(v))
      return make_error("bad label \"" + proto::lossy_utf8(k) + "\": keys and values must be UTF-8 text", EINVAL);
  }
  MOAT_ASSIGN_OR_RETURN(auto c, sandbox::open_volumes());
  MOAT_ASSIGN_OR_RETURN(auto lock, sandbox::FileLock::acquire(sandbox::volumes_lock_path(c.m.home)));
  sandbox::VolumeRecord r{n, sandbox::unix_now(), labels};
  MOAT_TRY(sandbox::make_volume(c.m.home, *c.db, r));
  return sandbox::info_of(c.m.home, r, {});
}

Result<VolumeInfo> inspect_volume(const std::string& name) {
  MOAT_ASSIGN_OR_RETURN(auto c, sandbox::open_volumes());
  MOAT_ASSIGN_OR_RETURN(auto found, c.db->find(name));
  if (!found) return make_error("no such volume: " + name, ENOENT);
  MOAT_ASSIGN_OR_RETURN(auto sandboxes, c.m.db->list());
  return sandbox::info_of(c.m.home, *found, sandboxes);
}

Result<std::vector<VolumeInfo>> list_volumes() {
  MOAT_ASSIGN_OR_RETURN(auto c, sandbox::open_volumes());
  MOAT_ASSIGN_OR_RETURN(auto records, c.db->list());
  MOAT_ASSIGN_OR_RETURN(auto sandboxes, c.m.db->list());
  std::vector<VolumeInfo> out;
  for (const auto& r : records) {
    out.push_back(sandbox::info_of(c.m.home, r, sandboxes));
  }
  return out;
}

Status remove_volume(const std::string& name, bool force) {
  MOAT_ASSIGN_OR_RETURN(auto c, sandbox::open_volumes());
  MOAT_ASSIGN_OR_RETURN(auto lock, sandbox::FileLock::acquire(sandbox::volumes_lock_path(c.m.home)));
  MOAT_ASSIGN_OR_RETURN(auto found, c.db->find(name));
  if (!found) return make_error("no such volume: " + name, ENOENT);
  MOAT_ASSIGN_OR_RETURN(auto sandboxes, c.m.db->list());
  auto users = sandbox::users_of(sandboxes, name);
  if (!users.empty() && !force) {
    std::string list;
    for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
    return make_error("volume " + name + " is in use by " + list + "; remove those sandboxes first, or use -f", EBUSY);
  }
  MOAT_TRY(store::remove_tree(sandbox::volumes_dir(c.m.home) + "/" + name));
  return c.db->remove(name);
}

}  // namespace moat
