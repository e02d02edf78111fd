#include "server/e2b/process_table.h"

#include <csignal>
#include <cstring>

#include <nlohmann/json.hpp>

#include "util/base64.h"

namespace moat::server::e2b {

void EventQueue::push(Item item) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return closed_ || bytes_ < kMaxQueuedBytes; });
  if (closed_) return;
  bytes_ += item.json.size();
  items_.push_back(std::move(item));
  cv_.notify_all();
}

std::optional<EventQueue::Item> EventQueue::pop(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !items_.empty(); })) return std::nullopt;
  Item item = std::move(items_.front());
  items_.pop_front();
  bytes_ -= item.json.size();
  cv_.notify_all();
  return item;
}

void EventQueue::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  items_.clear();
  bytes_ = 0;
  cv_.notify_all();
}

void ProcessEntry::note_started(int guest_pid) {
  std::lock_guard lock(state_mu_);
  pid = guest_pid;
  started_ = true;
  state_cv_.notify_all();
}

std::optional<int> ProcessEntry::wait_started(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_mu_);
  if (!state_cv_.wait_for(lock, timeout, [&] { return started_ || finished_; })) return std::nullopt;
  return started_ ? pid : 0;
}

bool ProcessEntry::enter(ProcessTable& table) {
  std::lock_guard lock(state_mu_);
  if (finished_) return true;
  return table.add(shared_from_this());
}

void ProcessEntry::finish(ProcessTable& table) {
  {
    std::lock_guard lock(state_mu_);
    finished_ = true;
    state_cv_.notify_all();
  }
  table.remove(*this);
}

void ProcessEntry::publish(const EventQueue::Item& item) {
  std::vector<std::shared_ptr<EventQueue>> now;
  {
    std::lock_guard lock(mu_);
    if (item.last) ended_ = true;
    now = followers_;
    if (item.last) followers_.clear();
  }
  // Outside the lock: a push may wait for a slow follower, and other
  // followers may come and go meanwhile.
  for (const auto& q : now) q->push(item);
}

std::shared_ptr<EventQueue> ProcessEntry::follow() {
  std::lock_guard lock(mu_);
  if (ended_) return nullptr;
  auto q = std::make_shared<EventQueue>();
  followers_.push_back(q);
  return q;
}

void ProcessEntry::unfollow(const std::shared_ptr<EventQueue>& queue) {
  queue->close();
  std::lock_guard lock(mu_);
  std::erase(followers_, queue);
}

bool ProcessTable::add(const std::shared_ptr<ProcessEntry>& entry) {
  std::lock_guard lock(mu_);
  auto& of = by_sandbox_[entry->sandbox_id];
  if (of.size() >= kMaxPerSandbox) return false;
  of[entry->pid] = entry;
  return true;
}

std::shared_ptr<ProcessEntry> ProcessTable::by_pid(const std::string& sandbox_id, int pid) {
  std::lock_guard lock(mu_);
  auto s = by_sandbox_.find(sandbox_id);
  if (s == by_sandbox_.end()) return nullptr;
  auto it = s->second.find(pid);
  return it == s->second.end() ? nullptr : it->second;
}

std::shared_ptr<ProcessEntry> ProcessTable::by_tag(const std::string& sandbox_id, const std::string& tag) {
  std::lock_guard lock(mu_);
  auto s = by_sandbox_.find(sandbox_id);
  if (s == by_sandbox_.end()) return nullptr;
  for (const auto& [pid, e] : s->second)
    if (e->tag && *e->tag == tag) return e;
  return nullptr;
}

std::vector<std::shared_ptr<ProcessEntry>> ProcessTable::list(const std::string& sandbox_id) {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<ProcessEntry>> out;
  auto s = by_sandbox_.find(sandbox_id);
  if (s == by_sandbox_.end()) return out;
  for (const auto& [pid, e] : s->second) out.push_back(e);
  return out;
}

void ProcessTable::remove(const ProcessEntry& entry) {
  std::lock_guard lock(mu_);
  auto s = by_sandbox_.find(entry.sandbox_id);
  if (s == by_sandbox_.end()) return;
  auto it = s->second.find(entry.pid);
  if (it != s->second.end() && it->second.get() == &entry) s->second.erase(it);
  if (s->second.empty()) by_sandbox_.erase(s);
}

void ProcessTable::forget_sandbox(const std::string& sandbox_id) {
  std::map<int, std::shared_ptr<ProcessEntry>> gone;
  {
    std::lock_guard lock(mu_);
    auto s = by_sandbox_.find(sandbox_id);
    if (s == by_sandbox_.end()) return;
    gone.swap(s->second);
    by_sandbox_.erase(s);
  }
  // The reader threads see their waits fail and end the streams.
  for (auto& [pid, e] : gone)
    if (e->exec) e->exec->cancel();
}

std::string start_event_json(int pid) {
  return nlohmann::json{{"event", {{"start", {{"pid", pid}}}}}}.dump();
}

std::string data_event_json(const char* stream, std::string_view bytes) {
  return std::string("{\"event\":{\"data\":{\"") + stream + "\":\"" + base64_encode(bytes) + "\"}}}";
}

namespace {

// As Go's os.ProcessState.String() says it, which is what envd reports.
std::string status_text(const ExitStatus& status) {
  if (!status.signal) return "exit status " + std::to_string(status.code);
  switch (status.signal) {
    case SIGKILL: return "signal: killed";
    case SIGTERM: return "signal: terminated";
    case SIGINT: return "signal: interrupt";
    case SIGHUP: return "signal: hangup";
    case SIGPIPE: return "signal: broken pipe";
    default: break;
  }
  const char* name = ::sigabbrev_np(status.signal);
  return std::string("signal: ") + (name ? name : std::to_string(status.signal).c_str());
}

}  // namespace

std::string end_event_json(const ExitStatus& status) {
  nlohmann::json end = {{"exitCode", status.signal ? -1 : status.code},
                        {"exited", status.signal == 0},
                        {"status", status_text(status)}};
  if (status.timed_out) end["error"] = "the command ran past its timeout";
  return nlohmann::json{{"event", {{"end", end}}}}.dump();
}

std::string keepalive_event_json() { return "{\"event\":{\"keepalive\":{}}}"; }

}  // namespace moat::server::e2b
