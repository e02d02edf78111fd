// The commands started through envd's Process service, by sandbox and guest
// pid, as envd keeps them: a command outlives the stream that started it
// (the SDK's background commands disconnect and connect again by pid), and
// any number of streams may follow one command (Start, then Connect calls).
// Output nobody follows is dropped, as envd drops it.
//
// Each command has a reader thread that waits on it (Exec::wait) and hands
// each piece of output, as the JSON of a ProcessEvent, to the queue of every
// stream following it. A queue holds at most kMaxQueuedBytes: past that the
// reader waits, so a client that stops reading holds its command back
// rather than the server's memory growing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moat/exec.h"
#include "server/e2b/connect_protocol.h"

namespace moat::server::e2b {

class EventQueue {
 public:
  static constexpr std::size_t kMaxQueuedBytes = 8 << 20;

  struct Item {
    std::string json;                  // a ProcessEvent message; empty for a bare end
    bool last = false;                 // the stream ends after it
    std::optional<ConnectError> error;  // with `last`: how it ends
  };
  // Waits while the queue is full, unless it was closed (the item is dropped then).
  void push(Item item);
  // The next item, or nullopt when `timeout` passed first.
  std::optional<Item> pop(std::chrono::milliseconds timeout);
  // The follower left: pushes stop waiting and are dropped.
  void close();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;
  std::size_t bytes_ = 0;
  bool closed_ = false;
};

class ProcessTable;

struct ProcessEntry : std::enable_shared_from_this<ProcessEntry> {
  std::string sandbox_id;
  int pid = 0;
  std::optional<std::string> tag;
  nlohmann::json config;  // the ProcessConfig it was started with (for List)
  bool pty = false;
  std::optional<Exec> exec;  // set once started; the reader thread waits on it

  // The reader thread says the command started (its guest pid) or ended.
  void note_started(int pid);
  // Waits until the command started or ended: its pid, 0 if it ended
  // first, nullopt when `timeout` passed.
  std::optional<int> wait_started(std::chrono::milliseconds timeout);
  // Puts the entry in `table` unless the command ended already; false only
  // when the table is full. `finish` marks it ended and takes it out, so an
  // entry never stays behind in the table whichever of the two comes first.
  bool enter(ProcessTable& table);
  void finish(ProcessTable& table);

  // Hands an event to every follower.
  void publish(const EventQueue::Item& item);
  // A new follower; nullptr once the command ended.
  std::shared_ptr<EventQueue> follow();
  void unfollow(const std::shared_ptr<EventQueue>& queue);

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<EventQueue>> followers_;
  bool ended_ = false;
  std::mutex state_mu_;
  std::condition_variable state_cv_;
  bool started_ = false;
  bool finished_ = false;
};

class ProcessTable {
 public:
  static constexpr std::size_t kMaxPerSandbox = 1024;

  // False when the sandbox has kMaxPerSandbox commands already.
  bool add(const std::shared_ptr<ProcessEntry>& entry);
  std::shared_ptr<ProcessEntry> by_pid(const std::string& sandbox_id, int pid);
  std::shared_ptr<ProcessEntry> by_tag(const std::string& sandbox_id, const std::string& tag);
  std::vector<std::shared_ptr<ProcessEntry>> list(const std::string& sandbox_id);
  void remove(const ProcessEntry& entry);
  // The sandbox went away: its commands are cancelled and dropped.
  void forget_sandbox(const std::string& sandbox_id);

 private:
  std::mutex mu_;
  std::map<std::string, std::map<int, std::shared_ptr<ProcessEntry>>> by_sandbox_;
};

// ProcessEvent messages as JSON.
std::string start_event_json(int pid);
std::string data_event_json(const char* stream, std::string_view bytes);  // "stdout", "stderr", "pty"
std::string end_event_json(const ExitStatus& status);
std::string keepalive_event_json();

}  // namespace moat::server::e2b
