// Idempotency-Key on creating requests: a client that retries a create
// after losing the answer gets the first answer again instead of a second
// sandbox. Keys are kept for a day (at most kMaxKeys, the oldest dropped);
// the same key with another body is refused; a retry that comes while the
// first is still running waits for its answer.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "server/http_types.h"

namespace moat::server {

class IdempotencyCache {
 public:
  static constexpr std::size_t kMaxKeys = 10000;
  static constexpr std::chrono::hours kKeep{24};

  // Runs `make` once per (route, key) and answers every request with that
  // key with its response. An empty key: just runs it.
  Response run(const std::string& route, const std::string& key, const std::string& body,
               const std::function<Response()>& make);

 private:
  struct Entry {
    std::string body;
    bool done = false;
    Response response;
    std::chrono::steady_clock::time_point at;
  };
  void expire_locked();

  std::mutex mu_;
  std::condition_variable done_;
  std::map<std::string, Entry> entries_;
};

}  // namespace moat::server
