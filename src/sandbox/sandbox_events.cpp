// moat/events.h: the events table of moat.db, read in order, and followed.
#include "moat/events.h"

#include <chrono>
#include <thread>

#include "sandbox/lifecycle.h"
#include "sandbox/sandbox_db.h"

namespace moat {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kBatch = 256;
constexpr auto kPollInterval = std::chrono::milliseconds(200);
// How often a following watch reconciles the running sandboxes, so that a
// VM that died is told as crashed even when nobody else looks.
constexpr auto kLookInterval = std::chrono::seconds(1);

Status look_at_running(sandbox::Manager& m) {
  MOAT_ASSIGN_OR_RETURN(auto all, m.db->list());
  for (auto& r : all) {
    if (r.state != to_string(SandboxState::kRunning)) continue;
    MOAT_TRY(sandbox::reconcile(m, std::move(r), false));
  }
  return ok_status();
}

}  // namespace

const char* to_string(SandboxEventKind kind) {
  switch (kind) {
    case SandboxEventKind::kCreated: return "created";
    case SandboxEventKind::kStarted: return "started";
    case SandboxEventKind::kStopped: return "stopped";
    case SandboxEventKind::kCrashed: return "crashed";
    case SandboxEventKind::kRemoved: return "removed";
    case SandboxEventKind::kNetworkDenied: return "network_denied";
  }
  return "unknown";
}

Status watch_sandbox_events(const SandboxEventOptions& options,
                            const std::function<bool(const SandboxEvent&)>& on_event) {
  MOAT_ASSIGN_OR_RETURN(auto m, sandbox::Manager::open());
  std::uint64_t after = options.after;
  Clock::time_point last_look = Clock::now();
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto batch, m.db->events_after(after, kBatch));
    for (const auto& e : batch) {
      after = e.seq;
      if (!on_event(e)) return ok_status();
    }
    if (batch.size() == static_cast<std::size_t>(kBatch)) continue;
    if (!options.follow || (options.cancelled && options.cancelled())) return ok_status();
    if (Clock::now() - last_look >= kLookInterval) {
      MOAT_TRY(look_at_running(m));
      last_look = Clock::now();
      continue;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace moat
