// Sandbox handles kept open between requests: opening one connects to the
// sandbox's shim, which a request should not pay each time. A handle runs
// one call at a time, so each request takes one out of the pool and puts it
// back when done; a handle that saw the sandbox stop is dropped.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "moat/sandbox.h"

namespace moat::server {

class HandlePool {
 public:
  // Runs `use` with a handle on the running sandbox `id` (an id, not a
  // name). Its Status decides whether the handle goes back.
  template <class T>
  Result<T> with(const std::string& id, const std::function<Result<T>(Sandbox&)>& use) {
    auto handle = take(id);
    if (!handle) return handle.error();
    Result<T> result = use(*handle);
    if (result || keepable(result.error())) give_back(id, std::move(*handle));
    return result;
  }
  // Every handle of `id` closed (the sandbox stopped or was removed).
  void forget(const std::string& id);
  void clear();

 private:
  Result<Sandbox> take(const std::string& id);
  void give_back(const std::string& id, Sandbox handle);
  static bool keepable(const Error& error);

  std::mutex mu_;
  std::map<std::string, std::vector<Sandbox>> idle_;
};

}  // namespace moat::server
