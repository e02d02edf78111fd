#include "server/e2b/dir_state.h"

namespace moat::server::e2b {

bool PolledWatchers::add(const std::string& id, PolledWatcher watcher) {
  std::lock_guard lock(mu_);
  std::size_t of_sandbox = 0;
  for (const auto& [wid, w] : watchers_)
    if (w.sandbox_id == watcher.sandbox_id) ++of_sandbox;
  if (of_sandbox >= kMaxPerSandbox) return false;
  watchers_[id] = std::move(watcher);
  return true;
}

bool PolledWatchers::remove(const std::string& sandbox_id, const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = watchers_.find(id);
  if (it == watchers_.end() || it->second.sandbox_id != sandbox_id) return false;
  watchers_.erase(it);
  return true;
}

void PolledWatchers::forget_sandbox(const std::string& sandbox_id) {
  std::lock_guard lock(mu_);
  std::erase_if(watchers_, [&](const auto& kv) { return kv.second.sandbox_id == sandbox_id; });
}

}  // namespace moat::server::e2b
