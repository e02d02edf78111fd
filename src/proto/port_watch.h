// The port watch behind --publish-listening (docs/network.md): the shim asks
// the agent to watch which TCP ports the guest listens on, and the agent
// reports the set whenever it changes.
//
//   shim -> agent `watch_ports` {"interval_ms": N}  look every N ms (at least
//       kMinWatchIntervalMs, at most kMaxWatchIntervalMs), 0: stop. Sent
//       after every hello, so a restored guest follows its new shim's
//       settings, not those of the shim that saved it. Not answered.
//   agent -> shim `listening` {"tcp": [port, ...]}  the whole set, ascending,
//       each port once: at once when a watch begins, then on each change.
//
// The agent's report is not trusted: ports outside 1..65535, a list longer
// than kMaxListeningPorts, duplicates or the wrong types make the whole
// message an error, and the shim keeps what it published before.
#pragma once

#include <cstdint>
#include <set>

#include "proto/message.h"
#include "util/result.h"

namespace moat::proto {

inline constexpr std::uint32_t kMinWatchIntervalMs = 100;
inline constexpr std::uint32_t kMaxWatchIntervalMs = 60'000;
inline constexpr std::size_t kMaxListeningPorts = 1024;

using PortSet = std::set<std::uint16_t>;

Message make_watch_ports(std::uint32_t interval_ms);
// The interval; 0 means stop. EINVAL for one outside the bounds.
Result<std::uint32_t> parse_watch_ports(const Json& payload);

// At most kMaxListeningPorts of `ports` (the lowest) are sent.
Message make_listening(const PortSet& ports);
Result<PortSet> parse_listening(const Json& payload);

}  // namespace moat::proto
