// Messages of the host <-> guest protocol: the CBOR body of a frame is a map
//   { "v": protocol version, "t": message type, "p": payload map }.
// Payload schemas live with the code that uses them (exec.h, file_ops.h, guest_mount.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "proto/frame.h"
#include "util/result.h"

namespace moat::proto {

using Json = nlohmann::json;

inline constexpr std::uint32_t kProtocolVersion = 1;
inline constexpr std::uint32_t kControlStream = 0;
inline constexpr std::size_t kMaxTypeLength = 32;

// Message types. Control stream (0): hello, ping, pong, shutdown, halt, halted, stop,
// network_update, stats, ok. Exec streams: exec, started, stdin, stdin_close,
// stdout, stderr, window, resize, signal, cancel, exit. Any stream: error.
//
// A control request that changes the running sandbox (network_update) is
// answered on the control stream, in order, by `ok` (empty payload) when it
// took effect, or by `error` {"code": an errno name such as "EINVAL" or
// "ENOSYS", "message": why} when nothing changed. Neither ends a stream.
namespace msg {
inline constexpr std::string_view kHello = "hello";
inline constexpr std::string_view kPing = "ping";
inline constexpr std::string_view kPong = "pong";
inline constexpr std::string_view kShutdown = "shutdown";
// shim -> agent `halt` {"sync_all": bool}: the quick end of a stop that
// kills instead of powering off (a discarded disk, or a stop with no
// grace). The agent kills every process at once, waits until they are gone,
// then flushes what must outlive the VM: the virtio-fs mounts (files the
// guest wrote, or dirtied through mmap, may still be in its page cache) or,
// with "sync_all", every filesystem (the writable disk is kept). It answers
// `halted` {} and goes on serving; the shim then kills QEMU.
inline constexpr std::string_view kHalt = "halt";
inline constexpr std::string_view kHalted = "halted";
inline constexpr std::string_view kStop = "stop";
// client -> shim: the network policy the sandbox applies from now on,
// {"mode": "none"|"public"|"all", "rules": [{"allow": bool, "rule": RULE}]}
// in order, the whole list (shim_contract/network_json.h).
inline constexpr std::string_view kNetworkUpdate = "network_update";
// client -> shim, {}: what the sandbox uses now; answered on the control
// stream by `stats` with the counters of shim_contract/stats_json.h.
// shim -> agent, {}: the guest's memory; answered on the control stream by
// `stats` {"mem_total_bytes": N, "mem_available_bytes": N}.
inline constexpr std::string_view kStats = "stats";
// client -> shim, {}: stop the VM's vCPUs (memory and devices kept) / run
// them again. Answered on the control stream by `ok` once QEMU did it (or
// already was so), or by `error`. While paused the shim refuses requests
// that open streams (code "EBUSY", a message saying it is paused); frames
// of open streams wait. On resume
// the shim sends the agent a `hello` with the host's time, since the
// guest's clock stood still.
//
// `pause` {"to_disk": true} instead saves the VM's state to the sandbox's
// directory (QEMU's migration stream) and ends QEMU and the shim: the
// answer `ok` comes once the file is complete, then the connection closes.
// A later shim restores it (shim_config.h: restore_from).
//
// `pause` {"to_file": PATH} (a memory snapshot) saves the state to PATH
// likewise, but QEMU and the shim go on with the VM paused, until a
// `resume`. With "ram_file": PATH2 as well, a shim whose guest RAM is its
// memfd copies the RAM to PATH2 (sparse, the size of the RAM) and PATH
// holds only the devices' state (shim_config.h: restore_ram); a shim
// without one (its guest maps a snapshot's RAM file) writes everything to
// PATH and no PATH2. With "resume_on_leave": true the VM runs again when
// the asking client disconnects before a `resume` (or another pause) came,
// so that a client killed between its save and its resume does not leave
// the sandbox paused; a VM that was paused before the save stays so.
inline constexpr std::string_view kPause = "pause";
inline constexpr std::string_view kResume = "resume";
// shim -> agent, {}: before QEMU saves the VM's state. The agent stops
// producing frames (no command output, no file data, no exits), sends what
// it holds, and answers `quiesced` {} as its last frame; from then on it
// reads only the control stream, until a `hello` ends the quiet. The shim
// sends nothing after `quiesce`. So once `quiesced` has arrived both
// directions of the channel are at a frame boundary with nothing in
// flight, and the saved guest can meet a new shim cleanly.
//
// shim -> agent `hello` {"time_ns": N, "restored": true}: the guest was
// restored from such a state under a new shim. The agent ends every stream
// (their clients belonged to the shim that saved it: exec sessions' process
// groups are killed, file streams and a freeze end), sets its clock, and
// answers with its own `hello`, as at boot.
inline constexpr std::string_view kQuiesce = "quiesce";
inline constexpr std::string_view kQuiesced = "quiesced";
inline constexpr std::string_view kOk = "ok";
// client -> agent, on a stream of its own, {"timeout_ms": N} (at most
// kMaxFreezeMs): freeze the writable upper filesystem so its disk can be
// copied consistently from the host. Answered by `frozen` {} once the
// filesystem is flushed and frozen. `thaw` {} (or a cancel, or the client
// leaving) thaws it; the agent answers `thawed` {"held": bool} and ends the
// stream. `held` is false when the time limit passed first: the agent thawed
// on its own and a copy made meanwhile may be inconsistent.
// shim -> agent `watch_ports`, agent -> shim `listening`: proto/port_watch.h.
inline constexpr std::string_view kWatchPorts = "watch_ports";
inline constexpr std::string_view kListening = "listening";
inline constexpr std::string_view kFreeze = "freeze";
inline constexpr std::string_view kFrozen = "frozen";
inline constexpr std::string_view kThaw = "thaw";
inline constexpr std::string_view kThawed = "thawed";
inline constexpr std::string_view kExec = "exec";
inline constexpr std::string_view kStarted = "started";
inline constexpr std::string_view kStdin = "stdin";
inline constexpr std::string_view kStdinClose = "stdin_close";
inline constexpr std::string_view kStdout = "stdout";
inline constexpr std::string_view kStderr = "stderr";
inline constexpr std::string_view kWindow = "window";
inline constexpr std::string_view kResize = "resize";
inline constexpr std::string_view kSignal = "signal";
inline constexpr std::string_view kCancel = "cancel";
inline constexpr std::string_view kExit = "exit";
inline constexpr std::string_view kError = "error";
}  // namespace msg

inline constexpr std::uint64_t kMaxFreezeMs = 10 * 60 * 1000;

struct Message {
  std::uint32_t stream = 0;
  std::uint8_t flags = 0;
  std::uint32_t version = kProtocolVersion;
  std::string type;
  Json payload = Json::object();
};

// Encodes a message as a whole frame appended to `out`.
void encode_message(const Message& m, std::string& out);
std::string encode_message(const Message& m);

// Decodes and validates a frame body. Never throws; every malformed input is
// an Error describing what was wrong.
Result<Message> decode_message(const Frame& frame);

// Convenience constructors.
Message make_message(std::uint32_t stream, std::string_view type, Json payload = Json::object(),
                     std::uint8_t flags = 0);
Message make_error_message(std::uint32_t stream, std::string_view code, std::string_view text,
                           bool end_stream = true);

// Data payloads carry bytes as a CBOR byte string under "d".
Message make_data_message(std::uint32_t stream, std::string_view type, std::string_view bytes);
// Extracts the bytes of a data message, or an Error if "d" is missing or not bytes.
Result<std::string> data_of(const Message& m);

// Typed payload field access with validation, for untrusted payloads.
Result<std::uint64_t> get_uint(const Json& p, const char* key, std::uint64_t max);
Result<std::int64_t> get_int(const Json& p, const char* key, std::int64_t min, std::int64_t max);
// A text or byte string (argv, paths and names are bytes; older peers send
// text), as bytes.
Result<std::string> get_string(const Json& p, const char* key, std::size_t max_len);
Result<bool> get_bool(const Json& p, const char* key);
bool has(const Json& p, const char* key);

// The `code` and `message` of an `error` payload. The payload comes from a
// peer that is not trusted: a missing, wrongly typed or oversized field gives
// the fallback, never an exception.
inline constexpr std::size_t kMaxErrorCode = 64;
inline constexpr std::size_t kMaxErrorText = 4096;
struct ErrorInfo {
  std::string code;
  std::string message;
};
ErrorInfo parse_error(const Json& p, std::string_view code_fallback = "error",
                      std::string_view message_fallback = "unknown error");

}  // namespace moat::proto
