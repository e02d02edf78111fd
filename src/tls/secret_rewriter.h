// Secret placeholders in the requests a guest sends over an intercepted
// connection (docs/tls.md, "Secrets"): HTTP/1 request heads are read one by
// one, and in those to a host a secret is bound to, its placeholder is
// replaced by the real value in header values, including inside an
// `Authorization: Basic` credential. A placeholder of a secret that is not
// bound to the connection's host, anywhere in what the guest sends, is a
// violation: the connection must be reset.
//
// The guest's bytes are hostile. A head is at most kMaxHead bytes, chunk
// size lines at most kMaxLine; a request whose framing is ambiguous
// (Content-Length and Transfer-Encoding both, a bad length) is refused
// rather than guessed at, so no second request can hide in a body. After a
// CONNECT or an Upgrade, the bytes are not HTTP any more: they pass as they
// are, still searched for placeholders.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace moat::tls {

struct SecretBinding {
  std::string name;         // the environment variable, for logs
  std::string placeholder;  // what the guest holds
  std::string value;        // what the bound hosts get
  // Exact names, or "*.suffix" (the apex and its subdomains), lower case.
  std::vector<std::string> hosts;
  // Also in the request target's query (percent-encoded there), and in
  // request bodies of at most kMaxBody bytes, held whole: with their
  // Content-Length set again, or, chunked, sent again as one chunk (the
  // trailers kept). Of a larger chunked body, its first kMaxBody bytes are.
  bool in_query = false;
  bool in_body = false;
  // Also on plain HTTP to port 80 (`:http`); otherwise only inside TLS the
  // shim verified.
  bool plain_http = false;
};

// Whether `host` (lower case) matches one of `patterns`: exact names, or
// "*.suffix" (the apex and its subdomains), lower case.
bool host_matches(const std::vector<std::string>& patterns, std::string_view host);
// Whether `host` (lower case) is one `secret` is bound to.
inline bool secret_bound_to(const SecretBinding& secret, std::string_view host) {
  return host_matches(secret.hosts, host);
}

class SecretRewriter {
 public:
  static constexpr std::size_t kMaxHead = 64 * 1024;
  static constexpr std::size_t kMaxLine = 4096;
  static constexpr std::size_t kMaxBody = 1 << 20;

  // `secrets` outlives the rewriter; `host` is the connection's server name.
  // `held_total`, when given, is shared by every rewriter of a process: the
  // bytes of bodies held for :body at once stay under kMaxHeldTotal, and a
  // body that would go past it passes as it is.
  // `plain`: the connection is plain HTTP, where only secrets with
  // plain_http are bound (the placeholder of any other is a violation).
  SecretRewriter(const std::vector<SecretBinding>& secrets, std::string host, std::size_t* held_total = nullptr,
                 bool plain = false);
  ~SecretRewriter();
  SecretRewriter(const SecretRewriter&) = delete;
  SecretRewriter& operator=(const SecretRewriter&) = delete;

  static constexpr std::size_t kMaxHeldTotal = 64 << 20;

  // Takes what the guest sent next and appends what goes to the server to
  // `out`. An error ends the connection: EACCES for a violation (the
  // message names the secret, never a value), EPROTO for a request that
  // cannot be framed safely.
  Status feed(std::string_view in, std::string& out);

  std::size_t substituted() const { return substituted_; }

 private:
  enum class State { kHead, kBody, kHeldBody, kChunkSize, kChunkData, kChunkEnd, kTrailers, kTunnel };

  Status on_head(std::string head, std::string& out);
  Status scan(std::string_view data);
  Status chunk_size_line(std::string_view line);
  void release_held(std::string& out);
  void flush_held_chunks(std::string& out);
  bool hold_more(std::size_t n);

  const std::vector<SecretBinding>& secrets_;
  std::string host_;
  std::vector<const SecretBinding*> bound_, unbound_;
  State state_ = State::kHead;
  std::string buffer_;          // a head or a line not yet whole
  std::uint64_t remaining_ = 0;  // body or chunk bytes still to pass
  std::string carry_;           // the end of what was scanned, for placeholders split across reads
  // kHeldBody: the head (its Content-Length value at held_length_at_,
  // held_length_size_ bytes) and the body so far.
  std::string held_head_, held_body_;
  std::size_t held_length_at_ = 0, held_length_size_ = 0;
  std::size_t* held_total_ = nullptr;
  std::size_t reserved_ = 0;  // of *held_total_, for the body held now
  bool holding_chunks_ = false;  // a chunked body held: its chunk lines are not passed on
  std::size_t substituted_ = 0;
};

}  // namespace moat::tls
