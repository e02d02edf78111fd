// A container's record in moat-runtime's state directory (--root):
//
//   <root>/<id>/state.json   what create settled (bundle, sandbox, keeper)
//   <root>/<id>/start.fifo   the keeper waits on it until `start`
//   <root>/<id>/started      written by `start` before it wakes the keeper
//   <root>/<id>/lock         flock held by each command on the container
//   <root>/moat/             the libmoat home of the runtime's sandboxes
//
// The status is derived, never stored: the keeper (the process whose pid the
// engine got) alive and not started is "created", alive and started is
// "running", gone is "stopped". The keeper's start time (from /proc) is
// kept with its pid, so a reused pid never reads as a live container.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "moat/result.h"
#include "util/unique_fd.h"

namespace moat::oci {

// runc's default; podman's `state` call passes no --root, so the default
// must be where create put it.
inline constexpr const char* kDefaultRoot = "/run/moat-runtime";

enum class ContainerStatus { kCreated, kRunning, kPaused, kStopped };
const char* to_string(ContainerStatus s);

struct ContainerRecord {
  std::string id;
  std::string oci_version;
  std::string bundle;
  std::string rootfs;
  std::string created;  // RFC 3339 with nanoseconds, UTC
  std::map<std::string, std::string> annotations;
  std::string sandbox;  // the libmoat sandbox id
  pid_t keeper_pid = 0;
  std::uint64_t keeper_start = 0;  // /proc/<pid>/stat field 22
};

// runc's rule: letters, digits, '_', '+', '-', '.', not "." or "..", at most
// 1024 bytes. EINVAL "invalid container ID format" otherwise.
Status check_container_id(const std::string& id);

class StateDir {
 public:
  explicit StateDir(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }
  std::string dir_of(const std::string& id) const { return root_ + "/" + id; }
  std::string moat_home() const { return root_ + "/moat"; }

  // Makes <root>/<id>; EEXIST "container with given ID already exists".
  Status make(const std::string& id) const;
  Status save(const ContainerRecord& r) const;
  // ENOENT "container does not exist".
  Result<ContainerRecord> load(const std::string& id) const;
  // Every container with a readable record, by id.
  std::vector<ContainerRecord> list() const;
  Status remove(const std::string& id) const;
  // An exclusive flock on <root>/<id>/lock, held while the fd lives.
  Result<UniqueFd> lock(const std::string& id) const;

 private:
  std::string root_;
};

// The process's start time (clock ticks since boot), 0 if it is gone or a
// zombie.
std::uint64_t process_start_time(pid_t pid);
// The keeper is the process create recorded (same pid, same start time).
bool keeper_alive(const ContainerRecord& r);
ContainerStatus status_of(const StateDir& dir, const ContainerRecord& r);

// runc's `state` JSON for the record (indented, no trailing newline).
std::string state_json(const ContainerRecord& r, ContainerStatus status);

// Now as RFC 3339 with nanoseconds in UTC ("2026-12-06T15:04:05.123456789Z").
std::string rfc3339_now();

}  // namespace moat::oci
