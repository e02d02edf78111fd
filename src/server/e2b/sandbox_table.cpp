#include "server/e2b/sandbox_table.h"

namespace moat::server::e2b {

bool SandboxTable::add(E2bSandbox sandbox) {
  std::lock_guard lock(mu_);
  if (sandboxes_.size() >= kMaxSandboxes) return false;
  std::string id = sandbox.id;
  sandboxes_[id] = std::move(sandbox);
  return true;
}

std::optional<E2bSandbox> SandboxTable::find(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return std::nullopt;
  return it->second;
}

std::vector<E2bSandbox> SandboxTable::list() {
  std::lock_guard lock(mu_);
  std::vector<E2bSandbox> out;
  out.reserve(sandboxes_.size());
  for (const auto& [id, s] : sandboxes_) out.push_back(s);
  return out;
}

bool SandboxTable::set_end(const std::string& id, Clock::time_point end_at) {
  std::lock_guard lock(mu_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return false;
  it->second.end_at = end_at;
  return true;
}

void SandboxTable::erase(const std::string& id) {
  std::lock_guard lock(mu_);
  sandboxes_.erase(id);
}

std::vector<std::string> SandboxTable::take_expired(Clock::time_point now) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (auto it = sandboxes_.begin(); it != sandboxes_.end();) {
    if (it->second.end_at <= now) {
      out.push_back(it->first);
      it = sandboxes_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace moat::server::e2b
