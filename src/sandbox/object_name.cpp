#include "sandbox/object_name.h"

namespace moat::sandbox {

bool valid_object_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  auto word = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!word(n[0])) return false;
  for (char c : n)
    if (!word(c) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

}  // namespace moat::sandbox
