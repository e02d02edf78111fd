#include "server/exec_registry.h"

#include "server/http_types.h"
#include "util/hex.h"

#include <sys/random.h>

#include <vector>

namespace moat::server {
namespace {

std::string new_exec_id() {
  unsigned char raw[12];
  if (getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) {
    static std::uint64_t counter = 0;
    return "x" + std::to_string(++counter);
  }
  return lower_hex(raw, sizeof raw);
}

}  // namespace

void ExecSink::deliver(char stream, std::string_view data) {
  std::lock_guard lock(mu);
  // No client attached: dropped (a command is read only while one is).
  if (channel) channel->send({true, std::string(1, stream) + std::string(data)});
}

Result<std::shared_ptr<ExecEntry>> ExecRegistry::add(const std::string& sandbox_id, Exec exec,
                                                     std::shared_ptr<ExecSink> sink, bool kill_on_disconnect) {
  std::lock_guard lock(mu_);
  reap_locked();
  if (entries_.size() >= kMaxExecs)
    return make_error("the server holds " + std::to_string(kMaxExecs) + " commands already", EAGAIN);
  auto entry = std::make_shared<ExecEntry>(new_exec_id(), sandbox_id, std::move(exec), std::move(sink));
  entry->kill_on_disconnect = kill_on_disconnect;
  entry->detached_at = std::chrono::steady_clock::now();
  entries_[entry->id] = entry;
  return entry;
}

Result<std::shared_ptr<ExecEntry>> ExecRegistry::attach(const std::string& sandbox_id, const std::string& exec_id) {
  auto entry = find(sandbox_id, exec_id);
  if (!entry) return make_error("no command " + exec_id + " in sandbox " + sandbox_id, ENOENT);
  std::lock_guard lock(entry->mu);
  if (entry->attached) return make_error("command " + exec_id + " has a client attached already", EBUSY);
  entry->attached = true;
  return entry;
}

void ExecRegistry::detach(const std::shared_ptr<ExecEntry>& entry) {
  std::lock_guard lock(entry->mu);
  entry->attached = false;
  entry->detached_at = std::chrono::steady_clock::now();
}

std::shared_ptr<ExecEntry> ExecRegistry::find(const std::string& sandbox_id, const std::string& exec_id) {
  std::lock_guard lock(mu_);
  reap_locked();
  auto it = entries_.find(exec_id);
  if (it == entries_.end() || it->second->sandbox_id != sandbox_id) return nullptr;
  return it->second;
}

void ExecRegistry::remove(const std::string& exec_id) {
  std::shared_ptr<ExecEntry> dropped;
  std::lock_guard lock(mu_);
  auto it = entries_.find(exec_id);
  if (it == entries_.end()) return;
  dropped = std::move(it->second);
  entries_.erase(it);
}

void ExecRegistry::forget_sandbox(const std::string& sandbox_id) {
  std::lock_guard lock(mu_);
  std::erase_if(entries_, [&](const auto& kv) { return kv.second->sandbox_id == sandbox_id; });
}

std::size_t ExecRegistry::size() {
  std::lock_guard lock(mu_);
  return entries_.size();
}

// Commands nobody attached to for the deadline are dropped: the last
// reference going kills them (Exec's destructor). Those started to go on
// without a client stay until they are deleted or their sandbox stops.
void ExecRegistry::reap_locked() {
  auto now = std::chrono::steady_clock::now();
  std::erase_if(entries_, [&](const auto& kv) {
    std::lock_guard lock(kv.second->mu);
    return kv.second->kill_on_disconnect && !kv.second->attached && now - kv.second->detached_at > kAttachDeadline;
  });
}

}  // namespace moat::server
