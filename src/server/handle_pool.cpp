#include "server/handle_pool.h"

namespace moat::server {
namespace {
// Per sandbox: enough for the requests that run at once on a 2-16 core host.
constexpr std::size_t kMaxIdlePerSandbox = 8;
}  // namespace

Result<Sandbox> HandlePool::take(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    auto it = idle_.find(id);
    if (it != idle_.end() && !it->second.empty()) {
      Sandbox handle = std::move(it->second.back());
      it->second.pop_back();
      return handle;
    }
  }
  return Sandbox::open(id);
}

void HandlePool::give_back(const std::string& id, Sandbox handle) {
  std::lock_guard lock(mu_);
  auto& idle = idle_[id];
  if (idle.size() < kMaxIdlePerSandbox) idle.push_back(std::move(handle));
}

bool HandlePool::keepable(const Error& error) {
  // The guest's own answers (ENOENT of a file, a command's EINVAL) leave the
  // connection good; losing the shim does not.
  ErrorKind kind = error.kind();
  return kind != ErrorKind::kNotRunning && kind != ErrorKind::kIo && kind != ErrorKind::kUnknown &&
         kind != ErrorKind::kProtocol && kind != ErrorKind::kTimedOut && kind != ErrorKind::kInterrupted;
}

void HandlePool::forget(const std::string& id) {
  std::vector<Sandbox> closing;
  {
    std::lock_guard lock(mu_);
    auto it = idle_.find(id);
    if (it == idle_.end()) return;
    closing = std::move(it->second);
    idle_.erase(it);
  }
}

void HandlePool::clear() {
  std::map<std::string, std::vector<Sandbox>> closing;
  std::lock_guard lock(mu_);
  closing.swap(idle_);
}

}  // namespace moat::server
