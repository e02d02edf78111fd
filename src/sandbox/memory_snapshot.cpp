#include "sandbox/memory_snapshot.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <nlohmann/json.hpp>

#include "moat/network.h"
#include "proto/message.h"
#include "sandbox/shim_request.h"
#include "sandbox/snapshot_store.h"
#include "sandbox/upper_copy.h"
#include "shim_contract/sandbox_layout.h"
#include "util/read_file.h"
#include "util/write_file_atomic.h"
#include "vm/accel.h"

namespace moat::sandbox {
namespace {

constexpr std::size_t kMaxVmFile = 4096;

std::string vm_path(const std::string& home, const std::string& id) { return snapshot_dir(home, id) + "/vm.json"; }

Result<SnapshotVm> read_vm(const std::string& home, const std::string& id) {
  MOAT_ASSIGN_OR_RETURN(auto text, read_file_bounded(vm_path(home, id), kMaxVmFile));
  auto j = nlohmann::json::parse(text, nullptr, false);
  SnapshotVm vm;
  if (!j.is_object() || !j.contains("memory_mib") || !j["memory_mib"].is_number_integer() || !j.contains("cpus") ||
      !j["cpus"].is_number_integer() || !j.contains("network_device") || !j["network_device"].is_boolean() ||
      !j.contains("accel") || !j["accel"].is_string())
    return make_error("snapshot " + id + ": " + vm_path(home, id) + " is damaged", EIO);
  vm.memory_mib = j["memory_mib"].get<int>();
  vm.cpus = j["cpus"].get<int>();
  vm.network_device = j["network_device"].get<bool>();
  vm.accel = j["accel"].get<std::string>();
  return vm;
}

}  // namespace

std::string snapshot_memory_path(const std::string& home, const std::string& id) {
  return snapshot_dir(home, id) + "/memory.state";
}

std::string snapshot_ram_path(const std::string& home, const std::string& id) {
  return snapshot_dir(home, id) + "/memory.ram";
}

Status save_running_vm(const Manager& m, const SandboxRecord& src, const SavedVm& to, const std::string& what) {
  if (src.info.state != SandboxState::kRunning)
    return make_error("a " + what + " needs a running sandbox; " + src.info.name + " is not running", ENOTCONN);
  if (!src.info.volumes.empty())
    return make_error("a sandbox with volumes cannot have a " + what +
                          ": QEMU cannot save the state of its virtio-fs devices",
                      EOPNOTSUPP);
  std::string dir = m.dir_of(src.info.id);
  // A paused sandbox stays paused after (the shim then holds it paused, and
  // its resume runs it).
  bool was_paused = ::access(shim::paused_marker_path(dir).c_str(), F_OK) == 0;
  // 1. The VM's state, the vCPUs then left standing and the agent quiet;
  //    its RAM apart as a file children map (a shim whose guest maps a
  //    snapshot's RAM itself puts the RAM into the state instead).
  //    One connection for the save and the resume: should this process
  //    die between them, the shim runs the VM again when it goes.
  auto conn = AgentConnection::connect(shim::control_socket_path(dir));
  if (!conn) return conn.error().wrap("sandbox " + src.info.name + " is not reachable");
  proto::Json p = {{"to_file", to.state}, {"ram_file", to.ram}, {"resume_on_leave", true}};
  MOAT_TRY(ask_shim_on(*conn, src.info.name, proto::make_message(proto::kControlStream, proto::msg::kPause, p),
                       "the " + what));
  // 2. The disk as the saved guest left it (QEMU flushed it when the
  //    migration stopped the VM), then the sandbox runs on whatever happened.
  Status copied = copy_upper_disk_as_it_lies(src, to.disk);
  Status resumed = was_paused ? ok_status()
                              : ask_shim_on(*conn, src.info.name,
                                            proto::make_message(proto::kControlStream, proto::msg::kResume),
                                            "the resume after the " + what);
  MOAT_TRY(copied);
  MOAT_TRY(resumed);
  if (::chmod(to.state.c_str(), 0400) != 0) return errno_error("chmod " + to.state);
  return ok_status();
}

Status save_memory_snapshot(const Manager& m, const SandboxRecord& src, const std::string& home,
                            const SnapshotRecord& s, const std::string& disk) {
  SavedVm to{snapshot_memory_path(home, s.info.id), snapshot_ram_path(home, s.info.id), disk};
  MOAT_TRY(save_running_vm(m, src, to, "memory snapshot"));
  // 3. What a child's VM must be to take that state.
  nlohmann::json vm = {{"memory_mib", src.info.memory_mib},
                       {"cpus", src.info.cpus},
                       {"network_device", network_needs_device(src.info.network)},
                       {"accel", vm::accel_name(src.vm.accel)}};
  return write_file_atomic(vm_path(home, s.info.id), vm.dump() + "\n", 0400);
}

void note_memory_snapshot(const std::string& home, SnapshotInfo& info) {
  if (::access(snapshot_memory_path(home, info.id).c_str(), F_OK) != 0) return;
  auto vm = read_vm(home, info.id);
  if (!vm) return;
  info.memory = true;
  info.memory_mib = vm->memory_mib;
  info.cpus = vm->cpus;
}

Status fit_options_to_memory_snapshot(const std::string& home, const SnapshotRecord& s, SandboxOptions& o) {
  if (::access(snapshot_memory_path(home, s.info.id).c_str(), F_OK) != 0) return ok_status();
  MOAT_ASSIGN_OR_RETURN(auto vm, read_vm(home, s.info.id));
  if (!o.volumes.empty() || !o.rootfs_share.empty())
    return make_error("a sandbox restored from memory snapshot " + s.info.name + " cannot have volumes", EINVAL);
  if (network_needs_device(o.network) != vm.network_device)
    return make_error(std::string("a sandbox restored from memory snapshot ") + s.info.name + " needs " +
                          (vm.network_device ? "a network (its VM has a network device)"
                                             : "--net none (its VM has no network device)"),
                      EINVAL);
  // The same accelerator: TCG's saved CPU state does not load under KVM.
  o.accel = vm::accel_from_name(vm.accel) == vm::Accel::kKvm ? Accel::kKvm : Accel::kTcg;
  o.memory_mib = vm.memory_mib;
  o.cpus = vm.cpus;
  return ok_status();
}

Status give_saved_vm(const std::string& state, const std::string& ram, const std::string& sandbox_dir) {
  std::string to = shim::memory_state_path(sandbox_dir);
  if (::link(state.c_str(), to.c_str()) != 0) return errno_error("linking " + state + " to " + to);
  if (::access(ram.c_str(), F_OK) != 0) return ok_status();
  std::string ram_to = shim::shared_ram_path(sandbox_dir);
  if (::link(ram.c_str(), ram_to.c_str()) != 0) return errno_error("linking " + ram + " to " + ram_to);
  return ok_status();
}

Status give_memory_state(const std::string& home, const SnapshotRecord& s, const std::string& sandbox_dir) {
  std::string state = snapshot_memory_path(home, s.info.id);
  if (::access(state.c_str(), F_OK) != 0) return ok_status();
  return give_saved_vm(state, snapshot_ram_path(home, s.info.id), sandbox_dir);
}

}  // namespace moat::sandbox
