#include "server/e2b/sandbox_table.h"

#include <cstdio>

namespace moat::server::e2b {

void SandboxTable::persist_to(SandboxRecords records) {
  std::lock_guard lock(mu_);
  records_ = std::move(records);
}

// A record that cannot be written costs the sandbox only its life across a
// restart of the server; said on the server's log.
void SandboxTable::saved(const E2bSandbox& s) {
  if (!records_) return;
  if (Status st = records_->save(s); !st)
    std::fprintf(stderr, "moat serve: e2b: keep the record of %s: %s\n", s.id.c_str(), st.error().message.c_str());
}

void SandboxTable::dropped(const std::string& id) {
  if (records_) records_->remove(id);
}

bool SandboxTable::add(E2bSandbox sandbox) {
  std::lock_guard lock(mu_);
  if (sandboxes_.size() >= kMaxSandboxes) return false;
  std::string id = sandbox.id;
  saved(sandbox);
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
  saved(it->second);
  return true;
}

void SandboxTable::erase(const std::string& id) {
  std::lock_guard lock(mu_);
  sandboxes_.erase(id);
  dropped(id);
}

std::vector<std::string> SandboxTable::take_expired(Clock::time_point now) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (auto it = sandboxes_.begin(); it != sandboxes_.end();) {
    if (it->second.end_at <= now) {
      out.push_back(it->first);
      dropped(it->first);
      it = sandboxes_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace moat::server::e2b
