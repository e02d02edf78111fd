#include "sandbox/secrets.h"

#include <sys/random.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <set>

#include "net/policy.h"

namespace moat {

Result<SecretViolation> parse_secret_violation(std::string_view text) {
  if (text == "block") return SecretViolation::kBlock;
  if (text == "block-and-stop") return SecretViolation::kBlockAndStop;
  return make_error("bad --on-secret-violation \"" + std::string(text) + "\": expected block or block-and-stop",
                    EINVAL);
}

Result<Secret> parse_secret(std::string_view spec, std::string value) {
  std::size_t at = spec.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == spec.size())
    return make_error("bad --secret \"" + std::string(spec) + "\": expected NAME@HOST[,HOST...]", EINVAL);
  Secret s;
  s.name = std::string(spec.substr(0, at));
  s.value = std::move(value);
  std::string_view hosts = spec.substr(at + 1);
  if (std::size_t colon = hosts.find(':'); colon != std::string_view::npos) {
    std::string_view options = hosts.substr(colon + 1);
    hosts = hosts.substr(0, colon);
    while (true) {
      std::size_t comma = options.find(',');
      std::string_view one = options.substr(0, comma);
      if (one == "body") {
        s.in_body = true;
      } else if (one == "query") {
        s.in_query = true;
      } else if (one == "http") {
        s.plain_http = true;
      } else {
        return make_error("bad --secret \"" + std::string(spec) + "\": unknown option \"" + std::string(one) +
                              "\" (body, query, http)",
                          EINVAL);
      }
      if (comma == std::string_view::npos) break;
      options.remove_prefix(comma + 1);
    }
  }
  while (true) {
    std::size_t comma = hosts.find(',');
    s.hosts.emplace_back(hosts.substr(0, comma));
    if (comma == std::string_view::npos) break;
    hosts.remove_prefix(comma + 1);
  }
  return s;
}

namespace sandbox {
namespace {

bool valid_env_name(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  if (std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

Error bad_secret(const Secret& s, const std::string& why) {
  return make_error("bad --secret " + s.name + ": " + why, EINVAL);
}

}  // namespace

Status validate_secrets(const std::vector<Secret>& secrets) {
  if (secrets.size() > kMaxSecrets)
    return make_error("too many secrets: " + std::to_string(secrets.size()) + " (at most " +
                          std::to_string(kMaxSecrets) + ")",
                      EINVAL);
  std::set<std::string> names;
  for (const auto& s : secrets) {
    if (!valid_env_name(s.name))
      return make_error("bad --secret \"" + s.name + "\": the name must be an environment variable's "
                        "([A-Za-z_][A-Za-z0-9_]*, at most 128)", EINVAL);
    if (!names.insert(s.name).second) return bad_secret(s, "given twice");
    if (s.value.empty()) return bad_secret(s, "its value is empty");
    if (s.value.size() > kMaxSecretValue) return bad_secret(s, "its value is larger than 16 KiB");
    // It goes into request headers: a line break would start a header of
    // the guest's choosing.
    if (s.value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos)
      return bad_secret(s, "its value holds a line break or NUL");
    if (s.hosts.empty()) return bad_secret(s, "no host");
    for (const auto& h : s.hosts)
      if (!net::normalize_host_pattern(h))
        return bad_secret(s, "\"" + h + "\" is not a host name (api.example.com) or *.suffix (*.example.com)");
  }
  return ok_status();
}

Result<PreparedSecrets> prepare_secrets(const std::vector<Secret>& secrets, SecretViolation on_violation) {
  PreparedSecrets out;
  out.file.stop_on_violation = on_violation == SecretViolation::kBlockAndStop;
  for (const auto& s : secrets) {
    unsigned char bytes[16];
    if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) return errno_error("getrandom");
    std::string placeholder = "moat-secret-";
    for (unsigned char b : bytes) placeholder += "0123456789abcdef"[b >> 4], placeholder += "0123456789abcdef"[b & 15];
    shim::StoredSecret stored{s.name, placeholder, s.value, {}, s.in_query, s.in_body, s.plain_http};
    for (const auto& h : s.hosts) stored.hosts.push_back(net::normalize_host_pattern(h).value_or(h));
    out.env.push_back(s.name + "=" + placeholder);
    out.file.secrets.push_back(std::move(stored));
  }
  return out;
}

}  // namespace sandbox
}  // namespace moat
