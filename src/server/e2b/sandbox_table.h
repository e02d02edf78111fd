// The sandboxes made through the E2B API and what E2B keeps with each that
// moat's record does not: the template, the envd access token, metadata,
// the environment every command gets, and the end of its life (E2B's
// timeout, which this server enforces: a sandbox past it is removed).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/e2b/e2b_sandbox.h"
#include "server/e2b/sandbox_records.h"

namespace moat::server::e2b {

class SandboxTable {
 public:
  static constexpr std::size_t kMaxSandboxes = 4096;

  // From now on every change is written to `records` too.
  void persist_to(SandboxRecords records);

  // False when the table is full.
  bool add(E2bSandbox sandbox);
  std::optional<E2bSandbox> find(const std::string& id);
  std::vector<E2bSandbox> list();
  // False if `id` is unknown.
  bool set_end(const std::string& id, Clock::time_point end_at);
  void erase(const std::string& id);
  // The ids whose end passed, taken out of the table.
  std::vector<std::string> take_expired(Clock::time_point now);

 private:
  void saved(const E2bSandbox& s);  // mu_ held
  void dropped(const std::string& id);

  std::mutex mu_;
  std::map<std::string, E2bSandbox> sandboxes_;
  std::optional<SandboxRecords> records_;
};

}  // namespace moat::server::e2b
