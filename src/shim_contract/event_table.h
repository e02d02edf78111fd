// The events table of $MOAT_HOME/moat.db (include/moat/events.h), as both
// of its writers use it: libmoat, in the transaction of every state change,
// and a sandbox's shim, for what only it sees (network denials).
//
// The table keeps the newest kMaxEvents events, and of those at most
// kMaxNetworkEvents network ones, so that no guest can push a sandbox's
// lifecycle out of the history by getting itself denied.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/sqlite.h"
#include "util/result.h"

namespace moat::shim {

inline constexpr std::int64_t kMaxEvents = 10000;
inline constexpr std::int64_t kMaxNetworkEvents = 1000;
inline constexpr std::string_view kNetworkDeniedEvent = "network_denied";

// Appends an event of sandbox `id` (its name is the record's) and drops
// the oldest past the bounds. In the caller's transaction, if any.
Status insert_event(store::SqliteDb& db, const std::string& id, std::string_view kind, const std::string& reason,
                    std::int64_t time);

// The shim's way in: opens moat.db of `moat_home` (it exists: the record
// was made before the shim started) and appends one event.
Status append_shim_event(const std::string& moat_home, const std::string& id, std::string_view kind,
                         const std::string& reason);

}  // namespace moat::shim
