// `moat fork`: one consistent copy of a sandbox's upper disk (frozen while
// copied if it runs), then N new sandboxes with the source's settings, each
// booting from its own copy of it (include/moat/snapshots.h). A warm fork
// (--memory) saves the running VM with the copy, and each child restores it
// instead of booting (sandbox/memory_snapshot.h).
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "moat/snapshots.h"
#include "sandbox/lifecycle.h"
#include "sandbox/memory_snapshot.h"
#include "sandbox/object_name.h"
#include "sandbox/scratch_files.h"
#include "sandbox/upper_copy.h"
#include "shim_contract/sandbox_layout.h"
#include "store/moat_home.h"

namespace moat {
namespace sandbox {
namespace {

constexpr int kMaxForks = 64;
constexpr Duration kForkFreeze = std::chrono::seconds(60);

Status validate(const ForkOptions& o, const std::string& prefix) {
  if (o.count < 1 || o.count > kMaxForks) return make_error("fork count must be between 1 and 64", EINVAL);
  std::string last = prefix + "-" + std::to_string(o.count);
  if (!valid_object_name(last))
    return make_error("invalid fork name \"" + last + "\": the prefix must make valid sandbox names", EINVAL);
  return ok_status();
}

// The source's settings as create options; the root comes from the copy.
SandboxOptions options_of(const SandboxRecord& r, const std::string& name) {
  SandboxOptions o;
  o.name = name;
  if (!r.info.image_digest.empty()) {
    o.image = r.info.image_digest;
    o.pull = PullPolicy::kNever;
  } else if (!r.vm.disks.empty()) {
    o.rootfs_image = r.vm.disks[0].path;
  }
  o.labels = r.info.labels;
  o.entrypoint = std::vector<std::string>{};
  o.command = r.info.command;
  o.volumes = r.info.volumes;
  o.tmpfs = r.info.tmpfs;
  o.idle_timeout = r.info.idle_timeout;
  o.max_duration = r.info.max_duration;
  o.cpus = r.info.cpus;
  o.cpu_weight = r.info.cpu_weight;
  o.io_weight = r.info.io_weight;
  o.memory_mib = r.info.memory_mib;
  o.disk_size_mib = r.info.disk_size_mib;
  o.accel = r.vm.accel == vm::Accel::kKvm ? Accel::kKvm : Accel::kTcg;
  if (r.vm.boot_timeout_ms > 0) o.boot_timeout = std::chrono::milliseconds(r.vm.boot_timeout_ms);
  if (r.vm.stop_timeout_ms >= 0) o.stop_timeout = std::chrono::milliseconds(r.vm.stop_timeout_ms);
  o.log_max_bytes = r.vm.log_max_bytes;
  o.network = r.info.network;
  return o;
}

// Boots the children two at a time at most per core is the host's
// business; here all at once, each on a thread with its own records handle.
Status start_all(const std::vector<SandboxInfo>& children) {
  std::vector<Status> results(children.size(), ok_status());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < children.size(); ++i)
    threads.emplace_back([&, i] { results[i] = start_sandbox(children[i].id); });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < children.size(); ++i)
    if (!results[i]) return results[i].error().wrap("fork " + children[i].name);
  return ok_status();
}

void remove_pending(Manager& m, const std::vector<PendingCreate>& pending) {
  for (const auto& p : pending) (void)remove_everything(m, p.record);
}

// All N children or none, even under kill -9: each is made whole but stays
// `creating` with its operation lock held (unlisted; removed by the next
// look should this process die), then all are marked created in one
// transaction, and only then are the locks let go.
// `saved`: a warm fork's saved VM, which every child gets links of.
Result<std::vector<SandboxInfo>> create_children(Manager& m, const SandboxRecord& source, int count,
                                                 const std::string& prefix, const UpperSource& upper,
                                                 const SavedVm* saved) {
  std::vector<PendingCreate> pending;
  for (int i = 1; i <= count; ++i) {
    auto child = create_pending(m, options_of(source, prefix + "-" + std::to_string(i)), nullptr, &upper);
    Status given = ok_status();
    if (child && saved) given = give_saved_vm(saved->state, saved->ram, m.dir_of(child->record.info.id));
    if (child) pending.push_back(std::move(*child));
    if (!child || !given) {
      remove_pending(m, pending);
      return (child ? given.error() : child.error()).wrap("fork " + std::to_string(i) + " of " + std::to_string(count));
    }
  }
  std::vector<std::string> ids;
  for (const auto& p : pending) ids.push_back(p.record.info.id);
  if (auto st = m.db->mark_all_created(ids); !st) {
    remove_pending(m, pending);
    return st.error().wrap("fork");
  }
  std::vector<SandboxInfo> children;
  for (auto& p : pending) {
    p.record.info.state = SandboxState::kCreated;
    children.push_back(std::move(p.record.info));
  }
  return children;
}

void remove_children(const std::vector<SandboxInfo>& children) {
  for (const auto& c : children) (void)remove_sandbox(c.id, /*force=*/true);
}

}  // namespace
}  // namespace sandbox

Result<std::vector<SandboxInfo>> fork_sandbox(const std::string& source, const ForkOptions& o) {
  using namespace sandbox;
  MOAT_ASSIGN_OR_RETURN(auto m, Manager::open());
  std::vector<SandboxInfo> children;
  {
    MOAT_ASSIGN_OR_RETURN(auto locked, lock_sandbox(m, source));
    const SandboxRecord& r = locked.record;
    if (r.state == kStateCreating) return make_error("sandbox " + source + " is still being created", EBUSY);
    std::string prefix = o.name_prefix.empty() ? r.info.name + "-fork" : o.name_prefix;
    MOAT_TRY(validate(o, prefix));
    // One copy for all children, in the source's directory (removed with it
    // should this process die before it is gone).
    std::string copy = m.dir_of(r.info.id) + "/fork-copy.ext4";
    // A warm fork's saved VM, beside it: the children keep links of it.
    SavedVm saved{m.dir_of(r.info.id) + "/fork-memory.state", m.dir_of(r.info.id) + "/fork-memory.ram", copy};
    ScratchFiles scratch;
    for (const auto& path : {copy, saved.state, saved.ram}) {
      ::unlink(path.c_str());  // a dead fork's: we hold the sandbox's lock
      scratch.paths.push_back(path);
    }
    if (o.memory) {
      MOAT_TRY(save_running_vm(m, r, saved, "warm fork"));
    } else {
      MOAT_TRY(copy_upper_disk(m, r, copy, kForkFreeze));
    }
    locked.lock.release();
    UpperSource upper;
    upper.disk = copy;
    upper.disk_size_mib = r.info.disk_size_mib;
    upper.image_display = r.info.image;
    MOAT_ASSIGN_OR_RETURN(children, create_children(m, r, o.count, prefix, upper, o.memory ? &saved : nullptr));
  }
  if (o.start) {
    if (auto st = start_all(children); !st) {
      remove_children(children);
      return st.error();
    }
    for (auto& c : children) {
      auto fresh = inspect_sandbox(c.id);
      if (fresh) c = std::move(*fresh);
    }
  }
  return children;
}

}  // namespace moat
