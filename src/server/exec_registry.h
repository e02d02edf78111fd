// Commands started through the server and not yet ended: POST .../exec
// makes one and answers its id, a WebSocket attaches to it. A command no
// client attached to within the attach deadline is killed, so a client that
// never comes back leaves nothing running; a registry is bounded.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "moat/exec.h"
#include "moat/result.h"

namespace moat::server {

class MessageChannel;

// Where a command's output goes: the channel of the client attached now
// (the Exec's callbacks write here from whichever thread reads).
struct ExecSink {
  std::mutex mu;
  MessageChannel* channel = nullptr;
  std::atomic<int> pid{0};
  void deliver(char stream, std::string_view data);
  void set(MessageChannel* c) {
    std::lock_guard lock(mu);
    channel = c;
  }
};

struct ExecEntry {
  std::string id;
  std::string sandbox_id;
  Exec exec;
  std::shared_ptr<ExecSink> sink;
  bool kill_on_disconnect = true;
  std::mutex mu;  // guards what follows
  bool attached = false;
  std::chrono::steady_clock::time_point detached_at;

  ExecEntry(std::string i, std::string s, Exec e, std::shared_ptr<ExecSink> k)
      : id(std::move(i)), sandbox_id(std::move(s)), exec(std::move(e)), sink(std::move(k)) {}
};

class ExecRegistry {
 public:
  static constexpr std::size_t kMaxExecs = 4096;
  static constexpr std::chrono::seconds kAttachDeadline{60};

  // Keeps `exec` and returns its entry (EAGAIN when full).
  Result<std::shared_ptr<ExecEntry>> add(const std::string& sandbox_id, Exec exec, std::shared_ptr<ExecSink> sink,
                                         bool kill_on_disconnect);
  // The entry of `sandbox_id`'s command `exec_id`, marked attached (EBUSY if
  // another client holds it, ENOENT if there is none).
  Result<std::shared_ptr<ExecEntry>> attach(const std::string& sandbox_id, const std::string& exec_id);
  void detach(const std::shared_ptr<ExecEntry>& entry);
  std::shared_ptr<ExecEntry> find(const std::string& sandbox_id, const std::string& exec_id);
  void remove(const std::string& exec_id);
  // Drops the commands of a sandbox that stopped or went away.
  void forget_sandbox(const std::string& sandbox_id);
  std::size_t size();

 private:
  void reap_locked();

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<ExecEntry>> entries_;
};

}  // namespace moat::server
