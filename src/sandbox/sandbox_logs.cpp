// include/moat/logs.h over the files the shim keeps in a sandbox directory.
#include "moat/logs.h"

#include <chrono>
#include <sstream>
#include <thread>

#include "moat/sandboxes.h"
#include "proto/exec_log.h"
#include "sandbox/log_follower.h"
#include "shim_contract/capped_log.h"
#include "shim_contract/sandbox_layout.h"

namespace moat {
namespace {

// How often a follower looks for new console output and for the end.
constexpr std::chrono::milliseconds kFollowInterval{200};

ExecEvent event_of(const std::string& line) {
  ExecEvent e;
  auto parsed = proto::parse_exec_log_line(line);
  if (!parsed) {
    e.message = line;
    return e;
  }
  e.time = parsed->time;
  e.stream = parsed->stream;
  e.event = parsed->event;
  e.argv = parsed->argv;
  e.argv_truncated = parsed->argv_truncated;
  e.code = parsed->code;
  e.signal = parsed->signal;
  e.timed_out = parsed->timed_out;
  e.message = parsed->message;
  return e;
}

}  // namespace

Status read_sandbox_logs(const std::string& id_or_name, const LogCallbacks& callbacks, bool follow) {
  MOAT_ASSIGN_OR_RETURN(auto info, inspect_sandbox(id_or_name));
  auto console_sink = [&](std::string_view s) {
    if (callbacks.on_console) callbacks.on_console(s);
  };
  // Placed at the console's end before it is read, so that a follower
  // misses nothing written in between.
  std::string console_path = shim::console_log_path(info.dir);
  sandbox::LogFollower follower(console_path, console_sink);
  console_sink(shim::capped_log_read_all(console_path));
  std::istringstream history(shim::capped_log_read_all(shim::exec_log_path(info.dir)));
  for (std::string line; std::getline(history, line);) {
    if (callbacks.on_exec_event) callbacks.on_exec_event(event_of(line));
  }
  if (!follow) return ok_status();
  while (true) {
    std::this_thread::sleep_for(kFollowInterval);
    follower.drain();
    if (callbacks.stop && callbacks.stop()) return ok_status();
    auto now = inspect_sandbox(info.id);
    if (!now || now->state != SandboxState::kRunning) break;
  }
  follower.drain();
  return ok_status();
}

}  // namespace moat
