// Sandbox events through the C ABI (moat/events.h): a watch with a callback
// and a cancel token another thread may fire.
#include <atomic>

#include "capi/handles.h"
#include "moat/events.h"
#include "moat/json.h"

struct moat_events {
  std::atomic<bool> cancelled{false};
};

using namespace moat::capi;

extern "C" {

int moat_events_new(moat_events** out, moat_error** err) {
  return guarded(err, [&] {
    if (out == nullptr) return fail(EINVAL, "events: no place for the token", err);
    *out = new moat_events;
    return 0;
  });
}

void moat_events_cancel(moat_events* token) {
  if (token != nullptr) token->cancelled = true;
}

void moat_events_free(moat_events* token) { delete token; }

int moat_watch_sandbox_events(uint64_t after, int follow, moat_events* token,
                              int (*on_event)(void* user_data, const char* event_json), void* user_data,
                              moat_error** err) {
  return guarded(err, [&] {
    if (on_event == nullptr) return fail(EINVAL, "events: no callback given", err);
    moat::SandboxEventOptions o;
    o.after = after;
    o.follow = follow != 0;
    if (token != nullptr) o.cancelled = [token] { return token->cancelled.load(); };
    auto st = moat::watch_sandbox_events(o, [&](const moat::SandboxEvent& e) {
      return on_event(user_data, moat::to_json_text(e).c_str()) == 0;
    });
    return done(st, err);
  });
}

}  // extern "C"
