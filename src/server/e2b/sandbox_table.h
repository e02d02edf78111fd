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

namespace moat::server::e2b {

using Clock = std::chrono::system_clock;

struct E2bSandbox {
  std::string id;  // moat's sandbox id, also the E2B sandboxID
  std::string template_id;
  std::string access_token;
  std::string user;  // the template's default user
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::string> env_vars;
  Clock::time_point started_at;
  Clock::time_point end_at;
  int cpus = 1;
  int memory_mib = 512;
};

class SandboxTable {
 public:
  static constexpr std::size_t kMaxSandboxes = 4096;

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
  std::mutex mu_;
  std::map<std::string, E2bSandbox> sandboxes_;
};

}  // namespace moat::server::e2b
