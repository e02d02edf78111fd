#include "server/idempotency_cache.h"

#include "server/api_error.h"

namespace moat::server {

Response IdempotencyCache::run(const std::string& route, const std::string& key, const std::string& body,
                               const std::function<Response()>& make) {
  if (key.empty()) return make();
  if (key.size() > 255) return error_response(400, "invalid_argument", "Idempotency-Key: at most 255 characters");
  std::string slot = route + "\n" + key;
  {
    std::unique_lock lock(mu_);
    expire_locked();
    auto it = entries_.find(slot);
    if (it != entries_.end()) {
      if (it->second.body != body)
        return error_response(422, "invalid_argument",
                              "Idempotency-Key " + key + " was used with another request body");
      done_.wait(lock, [&] {
        auto again = entries_.find(slot);
        return again == entries_.end() || again->second.done;
      });
      auto again = entries_.find(slot);
      if (again != entries_.end()) return again->second.response;
      // The first attempt failed and was forgotten: this one runs.
    }
    entries_[slot] = Entry{body, false, {}, std::chrono::steady_clock::now()};
  }
  Response response = make();
  std::lock_guard lock(mu_);
  // An answer that says the request could not be done is not kept: the
  // retry should try again (5xx), as it would without a key.
  if (response.status >= 500) {
    entries_.erase(slot);
  } else {
    auto& entry = entries_[slot];
    entry.done = true;
    entry.response = response;
    entry.response.headers.emplace_back("Idempotent-Replayed", "true");
  }
  done_.notify_all();
  return response;
}

void IdempotencyCache::expire_locked() {
  auto now = std::chrono::steady_clock::now();
  std::erase_if(entries_, [&](const auto& kv) { return kv.second.done && now - kv.second.at > kKeep; });
  while (entries_.size() >= kMaxKeys) {
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->second.done && (oldest == entries_.end() || it->second.at < oldest->second.at)) oldest = it;
    if (oldest == entries_.end()) break;
    entries_.erase(oldest);
  }
}

}  // namespace moat::server
