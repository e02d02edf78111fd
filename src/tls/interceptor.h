// TLS interception (docs/tls.md): the shim ends a guest's TLS connection
// with a leaf for the server name the guest asked for, signed by the
// sandbox's CA, opens TLS of its own to the real server, verifying its
// chain and name, and relays what is inside.
//
// The interceptor is handed two connected TCP sockets per connection: the
// guest's side (the user-mode stack's host socket, speaking the guest's
// TLS) and the upstream (already connected to the address the policy
// allowed). It runs on a thread of its own, so handshakes (a signature and
// a chain check each) never hold up the frames of other connections.
//
// Order of a connection:
//  0. The guest's first TLS record is peeked at (not consumed): a server
//     name `bypass` matches sends the connection to a plain byte relay.
//  1. The guest's ClientHello is read and held: its server name (SNI) and
//     ALPN list.
//  2. TLS to the upstream with the same server name and ALPN list. Its
//     certificate must verify against the host's roots (and
//     `upstream_ca_file`) for that name, or for the address when the guest
//     sent no name.
//  3. Only then the guest's handshake completes, with a leaf for the name
//     and the protocol the upstream chose, so h2 and http/1.1 both work
//     end to end and a client never sees a protocol the server did not
//     pick.
//  4. Bytes are relayed both ways, at most `max_buffer` bytes held per
//     direction; a close on one side is passed on to the other.
// Through a declared HTTP proxy (InterceptedConnection::proxy; docs/tls.md
// "Through a proxy"), two steps come first: the guest's CONNECT request is
// read (only CONNECT passes), its target judged (`tunnel_refusal`; refused:
// the guest gets 403 with the reason) and passed to the proxy; the proxy's
// answer goes back to the guest, and once it is 2xx the tunnel is handled
// as a direct connection to the target would be (0. to 4. above, the
// target's name standing in for the address), or relayed as it is when it
// is not intercepted.
// A failure before the relay (upstream unreachable by TLS, a certificate
// that does not verify, a guest that is not speaking TLS) closes both
// sockets and logs the reason with the connection's label.
//
// OpenSSL writes to the sockets with write(2): the process must ignore
// SIGPIPE (the shim does), or a peer that closed first would end it.
//
// Threat model: the guest's bytes are hostile (OpenSSL parses them; the
// ClientHello fields the interceptor reads are bounded by OpenSSL), and so
// is the upstream. Handshakes that do not finish in `handshake_timeout`
// are dropped; the number of connections is bounded by the caller (the
// flow table's max_connections).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tls/leaf_cache.h"
#include "tls/secret_rewriter.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::tls {

struct InterceptorOptions {
  // PEM roots trusted for upstream servers besides the host's
  // (--tls-upstream-ca); empty: none.
  std::string upstream_ca_file;
  // Whether the host's default roots (OpenSSL's default paths) are trusted
  // for upstream servers.
  bool host_roots = true;
  std::size_t max_buffer = 64 * 1024;
  std::chrono::milliseconds handshake_timeout{30000};
  // Secret placeholders (secret_rewriter.h): what the guest sends on every
  // connection goes through a SecretRewriter for its server name. Only
  // http/1.1 is offered to a server a secret is bound to (h2's compressed
  // headers cannot be rewritten), so a client that offers both falls back.
  std::vector<SecretBinding> secrets;
  // --tls-bypass: a connection whose ClientHello names one of these (exact
  // names or "*.suffix", lower case) is relayed as it is, TLS and all: the
  // guest sees the server's own certificate (clients that pin).
  std::vector<std::string> bypass;
  // A tunnel through a declared proxy to HOST:PORT (host lower case, or an
  // address): "" lets it open, anything else is why the policy refuses it.
  // Called on the interceptor's thread; unset: every target passes.
  std::function<std::string(const std::string& host, std::uint16_t port)> tunnel_refusal;
  // The tunnels that are intercepted: those to one of `tls_ports`, and of
  // them all (`intercept_all`, --tls-intercept) or those to a host a secret
  // is bound to. The others are relayed as they are once open.
  std::vector<std::uint16_t> tls_ports{443};
  bool intercept_all = true;
  // Called (on the interceptor's thread) after a violation reset a
  // connection, with the log line.
  std::function<void(const std::string&)> on_violation;
  // Run first on the interceptor's thread, before it touches a connection
  // (the shim drops that thread's capabilities there: they are per thread).
  std::function<void()> on_thread_start;
};

struct InterceptedConnection {
  UniqueFd guest;     // connected; the guest's TLS client at the other end
  UniqueFd upstream;  // connected to the server the policy allowed
  // The upstream's address as text ("93.184.216.34", "::1"): the name its
  // certificate must hold when the guest sends no SNI.
  std::string address;
  std::string label;  // for the log: "10.0.2.15:40000 -> 93.184.216.34:443"
  // Not empty: plain HTTP to this host (a :http secret's), relayed through
  // the secret rewriter without TLS.
  std::string plain_host;
  // The upstream is an HTTP proxy (--tls-proxy): the guest opens a tunnel
  // through it with CONNECT before anything else.
  bool proxy = false;
};

class Interceptor {
 public:
  using Log = std::function<void(const std::string&)>;

  struct Stats {
    std::uint64_t relayed = 0;          // connections that reached the relay
    std::uint64_t bypassed = 0;         // relayed as they are (--tls-bypass)
    std::uint64_t refused = 0;          // closed before it (any reason)
    std::uint64_t upstream_rejected = 0;  // of those: the upstream's certificate did not verify
    std::uint64_t violations = 0;         // connections reset for a secret's placeholder
    std::uint64_t substituted = 0;        // placeholders replaced by their values
    std::uint64_t masked = 0;             // values a server sent back, masked
    std::uint64_t tunnels = 0;            // CONNECTs a proxy opened
    std::uint64_t tunnels_refused = 0;    // CONNECTs refused before the proxy saw them
    std::size_t open = 0;
  };

  // Starts the interceptor's thread. EINVAL naming the file when
  // `upstream_ca_file` cannot be read as PEM certificates.
  static Result<std::unique_ptr<Interceptor>> start(LeafCache leaves, InterceptorOptions options, Log log);
  ~Interceptor();  // closes every connection and joins the thread

  // Takes the connection over; thread-safe.
  void add(InterceptedConnection connection);

  Stats stats() const;

  struct Impl;

 private:
  explicit Interceptor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat::tls
