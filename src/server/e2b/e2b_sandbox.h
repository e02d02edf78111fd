// What E2B keeps with a sandbox that moat's record does not: the template,
// the envd access token, metadata, the environment every command gets, and
// the end of its life (E2B's timeout).
#pragma once

#include <chrono>
#include <map>
#include <string>

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

}  // namespace moat::server::e2b
