// The secret rewriter (src/tls/secret_rewriter.h) on any bytes a guest could
// send, cut into reads anywhere: nothing may crash or grow without bound,
// and what it lets through to a host a secret is not bound to never holds
// that secret's placeholder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "tls/secret_rewriter.h"

using namespace moat::tls;

namespace {

const std::string kKey = "moat-secret-0123456789abcdef0123456789abcdef";
const std::string kToken = "moat-secret-fedcba9876543210fedcba9876543210";

const std::vector<SecretBinding>& secrets() {
  static const std::vector<SecretBinding> s = {{"API_KEY", kKey, "sk-live-REAL", {"api.example.test"}, true, true},
                                               {"TOKEN", kToken, "tok", {"*.corp.test"}, false, false, true}};
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static const char* kHosts[] = {"api.example.test", "git.corp.test", "evil.test", ""};
  std::string host = kHosts[data[0] % 4];
  std::size_t step = 1 + data[1] % 64;
  bool plain = data[1] & 0x80;  // plain HTTP: only :http secrets are bound
  std::size_t held = 0;
  SecretRewriter r(secrets(), host, &held, plain);
  std::string in(reinterpret_cast<const char*>(data + 2), size - 2), out;
  for (std::size_t at = 0; at < in.size(); at += step) {
    if (!r.feed(std::string_view(in).substr(at, step), out)) return 0;
    if (out.size() > 4 * in.size() + 64 * 1024) std::abort();  // substitution grows a head by bounded amounts
  }
  for (const auto& s : secrets())
    if (!(secret_bound_to(s, host) && (!plain || s.plain_http)) && out.find(s.placeholder) != std::string::npos)
      std::abort();
  return 0;
}
