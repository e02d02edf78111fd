#include "vm/child_env.h"

namespace moat::vm {
namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

bool allowed_in_child_env(const std::string& entry) {
  static const char* kExact[] = {"PATH=", "LANG=", "TZ=", "TMPDIR=", "ASAN_OPTIONS=", "UBSAN_OPTIONS=",
                                 "LSAN_OPTIONS="};
  for (const char* k : kExact) {
    if (starts_with(entry, k)) return true;
  }
  // LC_ALL, LC_CTYPE, ...: a name of capitals after LC_, then '='.
  if (!starts_with(entry, "LC_")) return false;
  auto eq = entry.find('=');
  if (eq == std::string::npos || eq == 3) return false;
  for (std::size_t i = 3; i < eq; ++i) {
    if (entry[i] < 'A' || entry[i] > 'Z') return false;
  }
  return true;
}

std::vector<std::string> child_env(char** env) {
  std::vector<std::string> out;
  for (char** e = env; e && *e; ++e) {
    std::string entry = *e;
    if (allowed_in_child_env(entry)) out.push_back(std::move(entry));
  }
  return out;
}

std::vector<char*> child_envp(char** env, std::vector<std::string>& storage) {
  storage = child_env(env);
  std::vector<char*> out;
  for (auto& s : storage) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace moat::vm
