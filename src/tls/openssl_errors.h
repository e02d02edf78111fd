// OpenSSL's error queue as text, for the messages of moat's errors.
#pragma once

#include <openssl/err.h>

#include <string>

namespace moat::tls {

// The queue's entries joined with "; ", and the queue emptied; `if_empty`
// when OpenSSL queued nothing (a peer that just closed, for one).
inline std::string openssl_reason(const char* if_empty = "unknown OpenSSL error") {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? if_empty : out;
}

}  // namespace moat::tls
