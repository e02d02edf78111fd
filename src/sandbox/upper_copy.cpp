#include "sandbox/upper_copy.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/agent_connection.h"
#include "shim_contract/sandbox_layout.h"
#include "store/sparse_copy.h"
#include "util/fsync_path.h"
#include "util/unique_fd.h"

namespace moat::sandbox {
namespace {

// Freezing waits for the guest's writes in flight and a journal flush.
constexpr int kFrozenWaitMs = 90 * 1000;
constexpr int kThawedWaitMs = 30 * 1000;

Error guest_error(const SandboxRecord& r, const proto::Message& reply, const char* step) {
  auto e = proto::parse_error(reply.payload);
  int code = e.code == "busy" ? EBUSY : e.code == "no_upper" ? EINVAL : e.code == "unknown_type" ? ENOSYS : EIO;
  return make_error("sandbox " + r.info.name + ": " + step + ": " + e.message, code);
}

// The agent's answer on `stream` (other streams' frames are not expected on
// a connection of our own and are skipped).
Result<proto::Message> await_reply(AgentConnection& conn, std::uint32_t stream, int timeout_ms,
                                   const SandboxRecord& r, const char* step) {
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto reply, conn.receive(timeout_ms));
    if (!reply) return make_error("sandbox " + r.info.name + " did not " + step + " in time", ETIMEDOUT);
    if (reply->stream != stream) continue;
    if (reply->type == proto::msg::kError) return guest_error(r, *reply, step);
    return std::move(*reply);
  }
}

// Freeze, copy, thaw. Closing the connection (any early return) makes the
// shim cancel the stream, and the agent thaws.
Status copy_frozen(const Manager& m, const SandboxRecord& r, const std::string& from, const std::string& to,
                   Duration limit) {
  auto conn = AgentConnection::connect(shim::control_socket_path(m.dir_of(r.info.id)));
  if (!conn) return conn.error().wrap("sandbox " + r.info.name + " is not reachable");
  std::uint32_t stream = conn->next_stream();
  proto::Json p = {{"timeout_ms", static_cast<std::uint64_t>(limit.count())}};
  MOAT_TRY(conn->send(proto::make_message(stream, proto::msg::kFreeze, p)));
  MOAT_ASSIGN_OR_RETURN(auto frozen, await_reply(*conn, stream, kFrozenWaitMs, r, "freeze its disk"));
  if (frozen.type != proto::msg::kFrozen)
    return make_error("sandbox " + r.info.name + ": unexpected answer \"" + frozen.type + "\" to a freeze", EIO);
  Status copied = store::sparse_copy(from, to);
  MOAT_TRY(conn->send(proto::make_message(stream, proto::msg::kThaw)));
  MOAT_ASSIGN_OR_RETURN(auto thawed, await_reply(*conn, stream, kThawedWaitMs, r, "thaw its disk"));
  MOAT_TRY(copied);
  auto held = proto::get_bool(thawed.payload, "held");
  if (thawed.type != proto::msg::kThawed || !held)
    return make_error("sandbox " + r.info.name + ": unexpected answer to a thaw", EIO);
  if (!*held)
    return make_error("copying sandbox " + r.info.name + "'s disk took longer than the freeze limit (" +
                          std::to_string(limit.count()) + " ms); the copy is discarded",
                      ETIMEDOUT);
  return ok_status();
}

}  // namespace

Result<std::string> upper_disk_of(const SandboxRecord& r) {
  if (r.vm.root_mode == "virtiofs")
    return make_error("sandbox " + r.info.name + "'s root is a host directory, which holds its changes: "
                      "there is no disk to snapshot, fork or compare",
                      EINVAL);
  if (r.vm.root_mode != "overlay" || r.vm.disks.size() < 2 || r.vm.disks[1].read_only)
    return make_error("sandbox " + r.info.name + " has no separate writable disk (its root is an image booted "
                      "writable): there is nothing to snapshot, fork or compare",
                      EINVAL);
  return r.vm.disks[1].path;
}

Status copy_upper_disk(const Manager& m, const SandboxRecord& r, const std::string& to, Duration freeze_limit) {
  if (r.info.state != SandboxState::kRunning) return copy_upper_disk_as_it_lies(r, to);
  MOAT_ASSIGN_OR_RETURN(auto from, upper_disk_of(r));
  auto copied = copy_frozen(m, r, from, to, freeze_limit);
  if (copied) copied = fsync_path(to);
  if (!copied) ::unlink(to.c_str());
  return copied;
}

Status copy_upper_disk_as_it_lies(const SandboxRecord& r, const std::string& to) {
  MOAT_ASSIGN_OR_RETURN(auto from, upper_disk_of(r));
  auto copied = store::sparse_copy(from, to);
  if (copied) copied = fsync_path(to);
  if (!copied) ::unlink(to.c_str());
  return copied;
}

}  // namespace moat::sandbox
