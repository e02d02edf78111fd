// What a polling watcher remembers of a directory between two looks (the
// WatchDir stream and the polled CreateWatcher/GetWatcherEvents calls), and
// the watchers a client made with CreateWatcher.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "moat/sandbox.h"

namespace moat::server::e2b {

struct EntryState {
  FileType type = FileType::kFile;
  std::uint32_t mode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};
// Paths relative to the watched directory.
using DirState = std::map<std::string, EntryState>;

struct PolledWatcher {
  std::string sandbox_id;
  std::string dir;
  bool recursive = false;
  DirState last;  // as the previous GetWatcherEvents (or CreateWatcher) saw it
};

class PolledWatchers {
 public:
  static constexpr std::size_t kMaxPerSandbox = 64;

  // False when the sandbox has kMaxPerSandbox already.
  bool add(const std::string& id, PolledWatcher watcher);
  // Runs `use` on the watcher `id` of `sandbox_id` (its own lock held);
  // false if there is none.
  template <class F>
  bool with(const std::string& sandbox_id, const std::string& id, F&& use) {
    std::lock_guard lock(mu_);
    auto it = watchers_.find(id);
    if (it == watchers_.end() || it->second.sandbox_id != sandbox_id) return false;
    use(it->second);
    return true;
  }
  bool remove(const std::string& sandbox_id, const std::string& id);
  void forget_sandbox(const std::string& sandbox_id);

 private:
  std::mutex mu_;
  std::map<std::string, PolledWatcher> watchers_;
};

}  // namespace moat::server::e2b
