// Type confusion: well-formed messages of every type whose fields have the
// wrong types. The CBOR is valid, so it gets past the guard and the message
// decoder and reaches every payload parser and the exec history writer and
// reader, which must answer with an error value or a fallback and never
// throw (an exception escaping here aborts the run).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/exec.h"
#include "proto/exec_log.h"
#include "proto/file_ops.h"
#include "proto/message.h"
#include "proto/port_watch.h"
#include "proto/text.h"

namespace {

using moat::proto::Json;

constexpr const char* kTypes[] = {"hello", "ping", "pong", "shutdown", "stop", "exec", "started", "stdin",
                                  "stdin_close", "stdout", "stderr", "window", "resize", "signal", "cancel",
                                  "exit", "error", "stat", "list", "read", "write", "mkdir", "remove",
                                  "rename", "chmod", "chown", "tar_out", "tar_in", "data", "end", "entries",
                                  "result", "network_update", "ok", "watch_ports", "listening"};

constexpr const char* kFields[] = {"argv", "env", "cwd", "user", "tty", "rows", "cols", "stdin", "timeout_ms",
                                   "rlimits", "pid", "d", "n", "sig", "code", "signal", "timed_out", "message",
                                   "version", "agent", "time_ns", "interval_ms", "tcp", "path", "to", "name", "mode", "uid", "gid",
                                   "follow", "parents", "recursive", "append", "exclusive", "offset", "length",
                                   "bytes", "entries", "stat", "type", "size", "nlink", "mtime_ns", "target",
                                   "sandbox", "rules", "allow", "rule"};

// Reads the fuzz input as a stream of choices.
struct Input {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | byte();
    return v;
  }
  std::string bytes() {
    std::size_t len = byte() % 24;
    std::string s;
    for (std::size_t i = 0; i < len; ++i) s.push_back(static_cast<char>(byte()));
    return s;
  }
};

Json value(Input& in, int depth);

Json container(Input& in, int depth, bool map) {
  Json c = map ? Json::object() : Json::array();
  std::size_t count = in.byte() % 4;
  for (std::size_t i = 0; i < count; ++i) {
    if (map) c[kFields[in.byte() % std::size(kFields)]] = value(in, depth + 1);
    else c.push_back(value(in, depth + 1));
  }
  return c;
}

// A value of any CBOR type, text strings not necessarily UTF-8.
Json value(Input& in, int depth) {
  switch (in.byte() % 11) {
    case 0: return in.u64();
    case 1: return -static_cast<std::int64_t>(in.u64() >> 1) - 1;
    case 2: return static_cast<double>(in.u64()) / 3.0;
    case 3: return (in.byte() & 1) != 0;
    case 4: return nullptr;
    case 5: return in.bytes();  // a text string, maybe invalid UTF-8
    case 6: return moat::proto::bytes_value(in.bytes());
    case 7: return depth < 4 ? container(in, depth, false) : Json(0);
    case 8: return depth < 4 ? container(in, depth, true) : Json(0);
    case 9: return in.byte() % 3;  // small numbers hit the valid ranges
    default: return Json::array({in.byte(), in.byte()});
  }
}

void exercise(const moat::proto::Message& m) {
  namespace proto = moat::proto;
  const Json& p = m.payload;
  (void)proto::parse_exec_request(p);
  (void)proto::parse_exit_status(p);
  (void)proto::parse_error(p);
  (void)proto::data_of(m);
  (void)proto::parse_file_request(m.type, p);
  (void)proto::parse_file_stat(p);
  (void)proto::parse_entries(p);
  (void)proto::parse_file_result(p);
  (void)proto::parse_watch_ports(p);
  (void)proto::parse_listening(p);
  if (auto it = p.find("stat"); it != p.end()) (void)proto::parse_file_stat(*it);
  for (const char* key : kFields) {
    (void)proto::get_uint(p, key, ~0ull);
    (void)proto::get_int(p, key, INT64_MIN, INT64_MAX);
    (void)proto::get_string(p, key, 4096);
    (void)proto::get_bool(p, key);
  }
  // The exec history: written from the request and the end, read back.
  std::string start = proto::exec_log_start(1, m.stream, p);
  if (!proto::parse_exec_log_line(start)) __builtin_trap();
  if (auto end = proto::exec_log_end(2, m.stream, m); end && !proto::parse_exec_log_line(*end)) __builtin_trap();
  // What people see of it, and what a record keeps of its text.
  (void)proto::dump_lossy(p, 2);
  if (auto s = proto::get_string(p, "message", 4096)) {
    auto back = proto::bytes_from_json(Json::parse(proto::bytes_to_json(*s).dump()));
    if (!back || *back != *s) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace proto = moat::proto;
  Input in{data, size};
  proto::Message m;
  m.stream = in.byte() % 3;
  m.flags = in.byte() & 1;
  m.type = kTypes[in.byte() % std::size(kTypes)];
  m.payload = Json::object();
  std::size_t fields = in.byte() % 8;
  for (std::size_t i = 0; i < fields; ++i) m.payload[kFields[in.byte() % std::size(kFields)]] = value(in, 0);
  // Through the wire: encode, frame, decode, as a peer would receive it.
  std::string wire = proto::encode_message(m);
  proto::FrameDecoder decoder;
  decoder.feed(wire);
  proto::Frame frame;
  auto got = decoder.next(frame);
  if (!got.ok() || !*got) return 0;
  auto back = proto::decode_message(frame);
  if (!back.ok()) return 0;  // e.g. a text string the strict parser refuses
  exercise(*back);
  return 0;
}
