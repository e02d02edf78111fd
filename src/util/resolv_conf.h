// resolv.conf's nameserver lines, read the way the C library reads them: the
// keyword, a blank, then the address up to a blank or a comment. One reader
// for the sandbox's upstream resolver (netstack) and for the engine's file
// an OCI runtime is handed (oci_runtime); each then keeps the first address
// it can use.
#pragma once

#include <string_view>
#include <vector>

namespace moat {

inline std::vector<std::string_view> resolv_conf_nameservers(std::string_view text) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
  };
  std::vector<std::string_view> out;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.substr(0, 10) != "nameserver") continue;
    std::string_view value = trim(line.substr(10));
    if (value.size() == line.size() - 10) continue;  // no blank after the keyword
    value = value.substr(0, value.find_first_of(" \t#;"));
    if (!value.empty()) out.push_back(value);
  }
  return out;
}

}  // namespace moat
