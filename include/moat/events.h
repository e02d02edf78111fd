// What happened to the sandboxes of a MOAT_HOME, in order: created, started,
// stopped, crashed, removed, and what their networks denied. For a server or an SDK that shows sandboxes
// live, and for `moat events`.
//
//   moat::SandboxEventOptions o;
//   o.follow = true;
//   moat::watch_sandbox_events(o, [](const moat::SandboxEvent& e) {
//     std::printf("%s %s\n", moat::to_string(e.kind), e.name.c_str());
//     return true;  // false stops the watch
//   });
//
// Events are kept in moat.db with the records (the newest 10000), written in
// the same transaction as the state change they tell of, so a watcher sees
// every change exactly once and in order. A sandbox whose VM died is found
// crashed by whoever looks next (any moat call that reads its record); a
// following watch looks at the running ones itself about once a second. A
// sandbox removed while it ran (rm -f, or an auto-remove sandbox that
// ended) is told only as removed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "moat/duration.h"
#include "moat/result.h"

namespace moat {

// kNetworkDenied: the sandbox's network refused a connection or a name; the
// reason is the log line with the rule that decided (at most one event per
// sandbox every 10 s, counting the denials in between; the table keeps at
// most 1000 of them, so they never push the lifecycle out).
enum class SandboxEventKind { kCreated, kStarted, kStopped, kCrashed, kRemoved, kNetworkDenied };

const char* to_string(SandboxEventKind kind);

struct SandboxEvent {
  std::uint64_t seq = 0;   // increasing; give it as `after` to resume
  std::int64_t time = 0;   // unix seconds
  SandboxEventKind kind = SandboxEventKind::kCreated;
  std::string id;
  std::string name;
  std::string reason;      // stopped, crashed: why
};

struct SandboxEventOptions {
  // Only events after this one (0: all that are kept).
  std::uint64_t after = 0;
  // Then wait for new ones, until on_event returns false or `cancelled`
  // (checked a few times a second; may be empty) returns true.
  bool follow = false;
  std::function<bool()> cancelled;
};

// Calls on_event for each event, oldest first; returning false stops the
// watch (not an error).
Status watch_sandbox_events(const SandboxEventOptions& options,
                            const std::function<bool(const SandboxEvent&)>& on_event);

}  // namespace moat
