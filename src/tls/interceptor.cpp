#include "tls/interceptor.h"

#include "net/ip_address.h"
#include "net/tls_client_hello.h"
#include "tls/openssl_errors.h"
#include "tls/proxy_connect.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace moat::tls {
namespace {

using Clock = std::chrono::steady_clock;

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

// What OpenSSL said, or that the peer just closed.
std::string tls_reason() { return tls::openssl_reason("the connection closed"); }

enum class Phase {
  kProxyRequest,  // through a proxy: the guest's CONNECT
  kProxyAnswer,   // the CONNECT sent on; the proxy's answer
  kTunnelOpen,    // the answer (2xx) on its way to the guest
  kPeek,
  kGuestHello,
  kUpstreamHandshake,
  kGuestHandshake,
  kRelay,
  kRawRelay
};

// What reading an HTTP head off a socket came to.
enum class HeadRead { kWait, kWhole, kTooLong, kClosed, kError };

// A TLS record is at most 2^14 bytes of payload (RFC 8446 5.1) after its
// 5-byte header: the most the peek waits for.
constexpr std::size_t kMaxFirstRecord = 5 + 16384 + 256;
constexpr std::chrono::milliseconds kPeekRetry{5};

// What the guest's ClientHello asked for.
struct Hello {
  std::string server_name;  // empty: none sent
  std::string alpn;         // the protocol list, wire format without its length prefix
};

// The first host_name of a server_name extension's body; empty if none.
std::string read_server_name(const unsigned char* p, std::size_t len) {
  if (len < 2) return "";
  std::size_t list = (std::size_t{p[0]} << 8) | p[1];
  if (list + 2 > len) return "";
  std::size_t at = 2, end = 2 + list;
  while (at + 3 <= end) {
    unsigned type = p[at];
    std::size_t n = (std::size_t{p[at + 1]} << 8) | p[at + 2];
    at += 3;
    if (at + n > end) return "";
    if (type == 0) return std::string(reinterpret_cast<const char*>(p + at), n);
    at += n;
  }
  return "";
}

// An ALPN extension's protocol list (without its 2-byte length), checked
// entry by entry; empty when malformed.
std::string read_alpn(const unsigned char* p, std::size_t len) {
  if (len < 2) return "";
  std::size_t list = (std::size_t{p[0]} << 8) | p[1];
  if (list + 2 != len || list == 0) return "";
  for (std::size_t at = 2; at < len;) {
    std::size_t n = p[at];
    if (n == 0 || at + 1 + n > len) return "";
    at += 1 + n;
  }
  return std::string(reinterpret_cast<const char*>(p + 2), list);
}

}  // namespace

struct Interceptor::Impl {
  struct Conn {
    InterceptedConnection c;
    SslPtr guest_ssl, upstream_ssl;
    Phase phase = Phase::kPeek;
    Clock::time_point peek_again{};  // the first record (or a proxy head) is not whole yet
    std::optional<ConnectTarget> tunnel;  // through a proxy: where the guest's CONNECT goes
    Hello hello;
    std::string chosen_alpn;
    Clock::time_point deadline;
    std::string to_upstream, to_guest;    // read from one side, not yet written to the other
    std::string from_guest;               // read from the guest, before the secret rewriter
    std::unique_ptr<SecretRewriter> rewriter;  // when the sandbox has secrets
    std::vector<const SecretBinding*> bound;   // the secrets bound to this server
    bool told_echo = false;                    // the log has said a value came back
    bool guest_eof = false, upstream_eof = false;    // that side will send no more
    bool guest_shut = false, upstream_shut = false;  // we told that side we send no more
    bool failed = false;
    Impl* impl = nullptr;

    std::string name() const { return hello.server_name.empty() ? c.address : hello.server_name; }
  };

  LeafCache leaves;
  InterceptorOptions options;
  Log log;
  SslCtxPtr server_ctx, client_ctx;
  UniqueFd wake;
  std::thread thread;
  std::atomic<bool> stop{false};
  mutable std::mutex mu;
  std::vector<InterceptedConnection> incoming;  // under mu
  Stats stats;                                  // under mu
  std::list<Conn> conns;                        // the thread's own
  std::size_t held_bodies = 0;                  // bytes the rewriters hold for :body; the thread's own

  Impl(LeafCache l, InterceptorOptions o, Log lg) : leaves(std::move(l)), options(std::move(o)), log(std::move(lg)) {}

  static int conn_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
  }
  static Conn* conn_of(SSL* ssl) { return static_cast<Conn*>(SSL_get_ex_data(ssl, conn_index())); }

  // Called twice per guest handshake: first to read the hello and pause
  // until the upstream has answered, then to show the leaf.
  static int on_client_hello(SSL* ssl, int* alert, void*) {
    Conn* c = conn_of(ssl);
    if (!c) return SSL_CLIENT_HELLO_ERROR;
    if (c->phase == Phase::kGuestHello) {
      const unsigned char* p = nullptr;
      std::size_t len = 0;
      if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) == 1)
        c->hello.server_name = read_server_name(p, len);
      if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &len) == 1)
        c->hello.alpn = read_alpn(p, len);
      return SSL_CLIENT_HELLO_RETRY;
    }
    auto leaf = c->impl->leaves.leaf_for(c->name());
    if (!leaf || SSL_use_certificate(ssl, *leaf) != 1 || SSL_use_PrivateKey(ssl, c->impl->leaves.key()) != 1) {
      c->impl->note(*c, "no certificate for \"" + c->name() + "\": " + (leaf ? tls_reason() : leaf.error().message));
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
  }

  // The guest gets the protocol the upstream chose, or none if it chose none.
  static int on_alpn_select(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                            unsigned int inlen, void*) {
    Conn* c = conn_of(ssl);
    if (!c || c->chosen_alpn.empty()) return SSL_TLSEXT_ERR_NOACK;
    for (unsigned int at = 0; at < inlen;) {
      unsigned int n = in[at];
      if (at + 1 + n > inlen) break;
      if (n == c->chosen_alpn.size() && std::memcmp(in + at + 1, c->chosen_alpn.data(), n) == 0) {
        *out = in + at + 1;
        *outlen = static_cast<unsigned char>(n);
        return SSL_TLSEXT_ERR_OK;
      }
      at += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
  }

  Status make_contexts() {
    server_ctx.reset(SSL_CTX_new(TLS_server_method()));
    client_ctx.reset(SSL_CTX_new(TLS_client_method()));
    if (!server_ctx || !client_ctx) return make_error("setting up TLS: " + tls_reason(), ENOMEM);
    for (SSL_CTX* ctx : {server_ctx.get(), client_ctx.get()}) {
      SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
      SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
      // Many servers and clients (Python's http.server among them) close
      // the TCP connection without a close_notify: an end, not an error, or
      // the last bytes read with it would be dropped. A truncation is the
      // application protocol's to notice (HTTP's lengths), end to end.
      SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    }
    SSL_CTX_set_client_hello_cb(server_ctx.get(), on_client_hello, nullptr);
    SSL_CTX_set_alpn_select_cb(server_ctx.get(), on_alpn_select, nullptr);
    SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (options.host_roots && SSL_CTX_set_default_verify_paths(client_ctx.get()) != 1)
      return make_error("loading the host's TLS roots: " + tls_reason(), EIO);
    if (!options.upstream_ca_file.empty()) MOAT_TRY(add_upstream_roots());
    return ok_status();
  }

  Status add_upstream_roots() {
    MOAT_ASSIGN_OR_RETURN(auto roots, read_pem_certificates(options.upstream_ca_file));
    X509_STORE* store = SSL_CTX_get_cert_store(client_ctx.get());
    for (const auto& cert : roots)
      if (X509_STORE_add_cert(store, cert.get()) != 1) ERR_clear_error();  // a duplicate: already trusted
    return ok_status();
  }

  void note(const Conn& c, const std::string& what) {
    if (log) log("tls: " + c.c.label + (c.hello.server_name.empty() ? "" : " (" + c.hello.server_name + ")") + ": " + what);
  }

  void accept_new(Clock::time_point now) {
    std::vector<InterceptedConnection> fresh;
    {
      std::lock_guard<std::mutex> lock(mu);
      fresh.swap(incoming);
    }
    for (auto& ic : fresh) {
      conns.emplace_back();
      Conn& c = conns.back();
      c.c = std::move(ic);
      c.impl = this;
      c.deadline = now + options.handshake_timeout;
      ::fcntl(c.c.guest.get(), F_SETFL, ::fcntl(c.c.guest.get(), F_GETFL) | O_NONBLOCK);
      ::fcntl(c.c.upstream.get(), F_SETFL, ::fcntl(c.c.upstream.get(), F_GETFL) | O_NONBLOCK);
      if (!c.c.plain_host.empty()) {
        c.hello.server_name = c.c.plain_host;
        c.phase = Phase::kRawRelay;
        c.rewriter = std::make_unique<SecretRewriter>(options.secrets, c.c.plain_host, &held_bodies, true);
        bind_secrets(c, true);
        std::lock_guard<std::mutex> lock(mu);
        ++stats.relayed;
        continue;
      }
      c.guest_ssl.reset(SSL_new(server_ctx.get()));
      if (!c.guest_ssl || SSL_set_fd(c.guest_ssl.get(), c.c.guest.get()) != 1 ||
          SSL_set_ex_data(c.guest_ssl.get(), conn_index(), &c) != 1) {
        fail(c, "setting up TLS: " + tls_reason());
        continue;
      }
      if (c.c.proxy) c.phase = Phase::kProxyRequest;
      step(c);
    }
  }

  void fail(Conn& c, const std::string& why) {
    if (c.failed) return;
    c.failed = true;
    note(c, why);
    std::lock_guard<std::mutex> lock(mu);
    ++stats.refused;
  }

  // Runs a connection as far as it can go without waiting.
  void step(Conn& c) {
    ERR_clear_error();
    if (c.phase == Phase::kProxyRequest) proxy_request(c);
    if (!c.failed && c.phase == Phase::kProxyAnswer) proxy_answer(c);
    if (!c.failed && c.phase == Phase::kTunnelOpen) tunnel_open(c);
    if (!c.failed && c.phase == Phase::kPeek) peek(c);
    if (!c.failed && c.phase == Phase::kRawRelay) raw_relay(c);
    if (!c.failed && c.phase == Phase::kGuestHello) guest_hello(c);
    if (!c.failed && c.phase == Phase::kUpstreamHandshake) upstream_handshake(c);
    if (!c.failed && c.phase == Phase::kGuestHandshake) guest_handshake(c);
    if (!c.failed && c.phase == Phase::kRelay) relay(c);
  }

  // Takes the HTTP head at the start of what `fd` has into `head`, and
  // nothing after it (the TLS that follows is OpenSSL's to read): it is
  // peeked at until whole, at most kMaxProxyHead bytes.
  HeadRead take_head(Conn& c, int fd, std::string& head) {
    head.assign(kMaxProxyHead + 1, '\0');
    ssize_t n = ::recv(fd, head.data(), head.size(), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return HeadRead::kWait;
    if (n < 0) return HeadRead::kError;
    if (n == 0) return HeadRead::kClosed;
    head.resize(static_cast<std::size_t>(n));
    std::size_t length = http_head_length(head);
    if (length == 0 || length > kMaxProxyHead) {
      if (head.size() > kMaxProxyHead || length > kMaxProxyHead) return HeadRead::kTooLong;
      c.peek_again = Clock::now() + kPeekRetry;  // the rest is on its way
      return HeadRead::kWait;
    }
    head.resize(length);
    if (::recv(fd, head.data(), length, 0) != static_cast<ssize_t>(length)) return HeadRead::kError;
    return HeadRead::kWhole;
  }

  // moat answers the guest's CONNECT itself (`status`, the reason in the
  // body) and closes; the proxy sees nothing.
  void refuse_tunnel(Conn& c, int status, const std::string& reason) {
    note(c, reason);
    {
      std::lock_guard<std::mutex> lock(mu);
      ++stats.tunnels_refused;
    }
    c.to_guest = proxy_refusal(status, reason);
    c.guest_eof = c.upstream_eof = c.upstream_shut = true;
    ::shutdown(c.c.upstream.get(), SHUT_RDWR);
    c.phase = Phase::kRawRelay;
  }

  // The guest's CONNECT: read, judged, and sent on to the proxy.
  void proxy_request(Conn& c) {
    std::string head;
    switch (take_head(c, c.c.guest.get(), head)) {
      case HeadRead::kWait: return;
      case HeadRead::kClosed: fail(c, "the guest closed before its CONNECT request was whole"); return;
      case HeadRead::kError: fail(c, std::string("reading from the guest: ") + std::strerror(errno)); return;
      case HeadRead::kTooLong: refuse_tunnel(c, 400, "the request head is over 16 KiB"); return;
      case HeadRead::kWhole: break;
    }
    auto target = parse_connect_request(head);
    if (!target) {
      refuse_tunnel(c, 400, target.error().message);
      return;
    }
    c.tunnel = *target;
    if (options.tunnel_refusal) {
      std::string why = options.tunnel_refusal(target->host, target->port);
      if (!why.empty()) {
        refuse_tunnel(c, 403, "the tunnel to " + target->to_string() + " is refused: " + why);
        return;
      }
    }
    // No secret is bound to a proxy: a placeholder in its CONNECT (a
    // Proxy-Authorization made of one) is a violation like any other.
    std::string passed;
    SecretRewriter check(options.secrets, "the proxy " + c.c.address);
    if (Status st = check.feed(head, passed); !st) {
      if (st.error().code == EACCES) {
        violation(c, st.error().message);
      } else {
        refuse_tunnel(c, 400, st.error().message);
      }
      return;
    }
    c.to_upstream = std::move(head);
    c.phase = Phase::kProxyAnswer;
  }

  // The proxy's answer to the CONNECT. Not 2xx: the guest gets it and
  // what follows until the proxy closes, and nothing more of the guest's
  // goes to the proxy (a second CONNECT on it would not be judged).
  void proxy_answer(Conn& c) {
    if (!raw_push(c, c.c.upstream.get(), c.to_upstream, "proxy") || !c.to_upstream.empty()) return;
    std::string head;
    switch (take_head(c, c.c.upstream.get(), head)) {
      case HeadRead::kWait: return;
      case HeadRead::kClosed: fail(c, "the proxy closed before answering CONNECT " + c.tunnel->to_string()); return;
      case HeadRead::kError: fail(c, std::string("reading from the proxy: ") + std::strerror(errno)); return;
      case HeadRead::kTooLong: fail(c, "the proxy's answer head is over 16 KiB"); return;
      case HeadRead::kWhole: break;
    }
    auto status = parse_proxy_status(head);
    if (!status) {
      fail(c, status.error().message);
      return;
    }
    c.to_guest = std::move(head);
    if (*status / 100 != 2) {
      note(c, "the proxy answered " + std::to_string(*status) + " to CONNECT " + c.tunnel->to_string());
      c.guest_eof = true;
      c.phase = Phase::kRawRelay;
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      ++stats.tunnels;
    }
    c.c.label += " through the proxy to " + c.tunnel->to_string();
    c.phase = Phase::kTunnelOpen;
  }

  // The proxy's 2xx on its way to the guest; then the tunnel is a
  // connection to its target: intercepted like a direct one, or relayed.
  void tunnel_open(Conn& c) {
    if (!raw_push(c, c.c.guest.get(), c.to_guest, "guest") || !c.to_guest.empty()) return;
    const ConnectTarget& t = *c.tunnel;
    c.c.address = t.host;  // what the certificate must hold when the guest sends no name
    bool tls_port = std::find(options.tls_ports.begin(), options.tls_ports.end(), t.port) != options.tls_ports.end();
    bool bound = std::any_of(options.secrets.begin(), options.secrets.end(),
                             [&](const SecretBinding& s) { return secret_bound_to(s, t.host); });
    c.phase = tls_port && (options.intercept_all || bound) ? Phase::kPeek : Phase::kRawRelay;
  }

  // Looks at the guest's first record without taking it: a server name
  // --tls-bypass matches leaves the connection to a plain relay.
  void peek(Conn& c) {
    if (options.bypass.empty()) {
      c.phase = Phase::kGuestHello;
      return;
    }
    std::vector<std::uint8_t> head(kMaxFirstRecord);
    ssize_t n = ::recv(c.c.guest.get(), head.data(), head.size(), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      fail(c, "the guest closed before its ClientHello");
      return;
    }
    head.resize(static_cast<std::size_t>(n));
    std::size_t record = head.size() >= 5 ? 5 + (std::size_t{head[3]} << 8 | head[4]) : kMaxFirstRecord;
    if (head.size() >= 1 && head[0] == 0x16 && head.size() < std::min(record, kMaxFirstRecord)) {
      c.peek_again = Clock::now() + kPeekRetry;  // the rest of the record is on its way
      return;
    }
    net::ServerName sni = net::read_server_name(head);
    if (sni.kind == net::ServerName::Kind::kName && host_matches(options.bypass, sni.name)) {
      c.hello.server_name = sni.name;
      c.phase = Phase::kRawRelay;
      std::lock_guard<std::mutex> lock(mu);
      ++stats.bypassed;
      return;
    }
    c.phase = Phase::kGuestHello;
  }

  // --tls-bypass: the bytes as they are, both ways.
  bool raw_pull(Conn& c, int fd, std::string& buf, bool& eof, const char* side) {
    char chunk[16384];
    while (!eof && buf.size() < options.max_buffer) {
      ssize_t n = ::read(fd, chunk, std::min(sizeof chunk, options.max_buffer - buf.size()));
      if (n > 0) {
        buf.append(chunk, static_cast<std::size_t>(n));
      } else if (n == 0) {
        eof = true;
      } else if (errno == EAGAIN || errno == EINTR) {
        return true;
      } else {
        fail(c, std::string("reading from the ") + side + ": " + std::strerror(errno));
        return false;
      }
    }
    return true;
  }
  bool raw_push(Conn& c, int fd, std::string& buf, const char* side) {
    while (!buf.empty()) {
      ssize_t n = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
      if (n > 0) {
        buf.erase(0, static_cast<std::size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return true;
      } else {
        fail(c, std::string("writing to the ") + side + ": " + std::strerror(errno));
        return false;
      }
    }
    return true;
  }
  void raw_relay(Conn& c) {
    int guest = c.c.guest.get(), upstream = c.c.upstream.get();
    bool pulled = c.rewriter ? raw_pull(c, guest, c.from_guest, c.guest_eof, "guest") && rewrite(c)
                             : raw_pull(c, guest, c.to_upstream, c.guest_eof, "guest");
    if (!pulled || !raw_push(c, upstream, c.to_upstream, "server") ||
        !raw_pull(c, upstream, c.to_guest, c.upstream_eof, "server"))
      return;
    mask_echoed_values(c);
    if (!raw_push(c, guest, c.to_guest, "guest")) return;
    if (c.guest_eof && c.to_upstream.empty() && !c.upstream_shut) {
      ::shutdown(upstream, SHUT_WR);
      c.upstream_shut = true;
    }
    if (c.upstream_eof && c.to_guest.empty() && !c.guest_shut) {
      ::shutdown(guest, SHUT_WR);
      c.guest_shut = true;
    }
  }

  void guest_hello(Conn& c) {
    int r = SSL_accept(c.guest_ssl.get());
    int err = SSL_get_error(c.guest_ssl.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
    if (err != SSL_ERROR_WANT_CLIENT_HELLO_CB) {
      fail(c, "the guest's TLS handshake failed: " + tls_reason());
      return;
    }
    // Through a proxy, the name the guest's TLS asks for must be the one
    // its CONNECT asked for: the policy judged that one.
    if (c.tunnel && !c.tunnel->host_is_address && !c.hello.server_name.empty() &&
        lower(c.hello.server_name) != c.tunnel->host) {
      fail(c, "the ClientHello names \"" + c.hello.server_name + "\", but the CONNECT was for " +
                  c.tunnel->to_string());
      return;
    }
    c.upstream_ssl.reset(SSL_new(client_ctx.get()));
    SSL* up = c.upstream_ssl.get();
    if (!up || SSL_set_fd(up, c.c.upstream.get()) != 1) {
      fail(c, "setting up TLS: " + tls_reason());
      return;
    }
    // The certificate must hold the name the guest asked for, or, when it
    // sent none (or an address), the address or tunnel target.
    X509_VERIFY_PARAM* param = SSL_get0_param(up);
    std::string target = c.name();
    if (net::IpAddress::parse(target)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, target.c_str());
    } else {
      SSL_set_tlsext_host_name(up, target.c_str());
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, target.c_str(), target.size());
    }
    bind_secrets(c, false);
    std::string alpn = c.hello.alpn;
    if (!c.bound.empty() && offers(alpn, "http/1.1")) alpn = std::string("\x08http/1.1", 9);
    if (!alpn.empty())
      SSL_set_alpn_protos(up, reinterpret_cast<const unsigned char*>(alpn.data()), static_cast<unsigned int>(alpn.size()));
    c.phase = Phase::kUpstreamHandshake;
  }

  void upstream_handshake(Conn& c) {
    SSL* up = c.upstream_ssl.get();
    int r = SSL_connect(up);
    if (r == 1) {
      const unsigned char* proto = nullptr;
      unsigned int len = 0;
      SSL_get0_alpn_selected(up, &proto, &len);
      c.chosen_alpn.assign(reinterpret_cast<const char*>(proto), len);
      c.phase = Phase::kGuestHandshake;
      return;
    }
    int err = SSL_get_error(up, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
    long verify = SSL_get_verify_result(up);
    if (verify != X509_V_OK) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++stats.upstream_rejected;
      }
      fail(c, std::string("the server's certificate does not verify for \"") + c.name() +
                  "\": " + X509_verify_cert_error_string(verify));
      return;
    }
    fail(c, "the TLS handshake with the server failed: " + tls_reason());
  }

  static std::string lower(std::string s) {
    for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  }
  // The secrets bound to the connection's server (on plain HTTP, only
  // those that allow it): whose values it may get, and may send back.
  void bind_secrets(Conn& c, bool plain) {
    std::string host = lower(c.name());
    for (const auto& s : options.secrets)
      if ((!plain || s.plain_http) && secret_bound_to(s, host)) c.bound.push_back(&s);
  }
  // Whether the ALPN list `wire` (without its length) holds `proto`.
  static bool offers(const std::string& wire, std::string_view proto) {
    for (std::size_t at = 0; at < wire.size();) {
      std::size_t n = static_cast<unsigned char>(wire[at]);
      if (wire.compare(at + 1, n, proto) == 0 && n == proto.size()) return true;
      at += 1 + n;
    }
    return false;
  }

  void guest_handshake(Conn& c) {
    int r = SSL_accept(c.guest_ssl.get());
    if (r == 1) {
      c.phase = Phase::kRelay;
      if (!options.secrets.empty())
        c.rewriter = std::make_unique<SecretRewriter>(options.secrets, lower(c.name()), &held_bodies);
      std::lock_guard<std::mutex> lock(mu);
      ++stats.relayed;
      return;
    }
    int err = SSL_get_error(c.guest_ssl.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
    fail(c, "the guest's TLS handshake failed: " + tls_reason());
  }

  // Reads what `from` has into `buf` while there is room. False on an error.
  bool pull(Conn& c, SSL* from, std::string& buf, bool& eof, const char* side) {
    char chunk[16384];
    while (!eof && buf.size() < options.max_buffer) {
      std::size_t room = std::min(sizeof chunk, options.max_buffer - buf.size());
      int n = SSL_read(from, chunk, static_cast<int>(room));
      if (n > 0) {
        buf.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      int err = SSL_get_error(from, n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return true;
      if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        eof = true;  // close_notify, or the TCP stream ended without one
        ERR_clear_error();
        return true;
      }
      fail(c, std::string("reading from the ") + side + ": " + tls_reason());
      return false;
    }
    return true;
  }

  // A server that echoes a request back (httpbin's /headers, an error page
  // quoting it) would hand the guest the value it was given: every whole
  // occurrence still waiting for the guest is overwritten with '*', same
  // length, so the response's framing holds. Best effort: a value split by
  // a pause of the server mid-value is not seen whole.
  void mask_echoed_values(Conn& c) {
    for (const SecretBinding* s : c.bound) {
      if (s->value.empty()) continue;
      for (std::size_t at = c.to_guest.find(s->value); at != std::string::npos;
           at = c.to_guest.find(s->value, at + s->value.size())) {
        c.to_guest.replace(at, s->value.size(), s->value.size(), '*');
        {
          std::lock_guard<std::mutex> lock(mu);
          ++stats.masked;
        }
        if (!c.told_echo) {
          c.told_echo = true;
          note(c, "the server sent secret " + s->name + "'s value back; masked before the guest");
        }
      }
    }
  }

  // Passes what the guest sent through the secret rewriter. False when it
  // refused it: a violation or a request it cannot frame resets both sides.
  bool rewrite(Conn& c) {
    if (c.from_guest.empty()) return true;
    std::size_t before = c.rewriter->substituted();
    Status st = c.rewriter->feed(c.from_guest, c.to_upstream);
    c.from_guest.clear();
    {
      std::lock_guard<std::mutex> lock(mu);
      stats.substituted += c.rewriter->substituted() - before;
    }
    if (st) return true;
    if (st.error().code == EACCES) {
      violation(c, st.error().message);
      return false;
    }
    fail(c, st.error().message);
    return false;
  }

  // A secret's placeholder where it is not bound: both sides are reset,
  // and the line (secret and host, never a value) is logged and reported.
  void violation(Conn& c, const std::string& what) {
    std::string line = "tls: " + c.c.label + " (" + c.name() + "): " + what + "; connection reset";
    {
      std::lock_guard<std::mutex> lock(mu);
      ++stats.violations;
    }
    c.failed = true;
    // A reset, not a close: neither side may take what was cut short for
    // a complete exchange.
    for (int fd : {c.c.guest.get(), c.c.upstream.get()}) {
      linger hard{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    }
    if (log) log(line);
    if (options.on_violation) options.on_violation(line);
  }

  // Writes what `buf` holds to `to`. False on an error.
  bool push(Conn& c, SSL* to, std::string& buf, const char* side) {
    while (!buf.empty()) {
      int n = SSL_write(to, buf.data(), static_cast<int>(std::min<std::size_t>(buf.size(), 1 << 20)));
      if (n > 0) {
        buf.erase(0, static_cast<std::size_t>(n));
        continue;
      }
      int err = SSL_get_error(to, n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return true;
      fail(c, std::string("writing to the ") + side + ": " + tls_reason());
      return false;
    }
    return true;
  }

  // Passes a side's end on once everything it sent has been written.
  static void pass_close(SSL* to, int fd, bool from_eof, const std::string& buf, bool& shut) {
    if (shut || !from_eof || !buf.empty()) return;
    SSL_shutdown(to);
    ::shutdown(fd, SHUT_WR);
    shut = true;
  }

  void relay(Conn& c) {
    for (int round = 0; round < 64; ++round) {
      std::size_t before = c.to_upstream.size() + c.to_guest.size();
      bool eofs = c.guest_eof && c.upstream_eof;
      if (!c.rewriter) {
        if (!pull(c, c.guest_ssl.get(), c.to_upstream, c.guest_eof, "guest")) return;
      } else if (!pull(c, c.guest_ssl.get(), c.from_guest, c.guest_eof, "guest") || !rewrite(c)) {
        return;
      }
      if (!push(c, c.upstream_ssl.get(), c.to_upstream, "server")) return;
      if (!pull(c, c.upstream_ssl.get(), c.to_guest, c.upstream_eof, "server")) return;
      mask_echoed_values(c);
      if (!push(c, c.guest_ssl.get(), c.to_guest, "guest")) return;
      pass_close(c.upstream_ssl.get(), c.c.upstream.get(), c.guest_eof, c.to_upstream, c.upstream_shut);
      pass_close(c.guest_ssl.get(), c.c.guest.get(), c.upstream_eof, c.to_guest, c.guest_shut);
      bool moved = c.to_upstream.size() + c.to_guest.size() != before || eofs != (c.guest_eof && c.upstream_eof);
      // Another round only while bytes move and a buffer has room again
      // (OpenSSL may hold decrypted bytes poll cannot see).
      if (!moved || (c.to_upstream.size() >= options.max_buffer && c.to_guest.size() >= options.max_buffer)) break;
    }
  }

  static bool relaying(const Conn& c) { return c.phase == Phase::kRelay || c.phase == Phase::kRawRelay; }
  static bool finished(const Conn& c) { return c.failed || (relaying(c) && c.guest_shut && c.upstream_shut); }

  short events_for_guest(const Conn& c) const {
    short e = 0;
    bool handshaking = c.phase == Phase::kGuestHello || c.phase == Phase::kGuestHandshake;
    bool waiting = c.peek_again != Clock::time_point{};
    bool peeking = (c.phase == Phase::kPeek || c.phase == Phase::kProxyRequest) && !waiting;
    if (handshaking || peeking || (relaying(c) && !c.guest_eof && c.to_upstream.size() < options.max_buffer))
      e |= POLLIN;
    if ((relaying(c) || c.phase == Phase::kTunnelOpen) && !c.to_guest.empty()) e |= POLLOUT;
    if (handshaking && SSL_want_write(c.guest_ssl.get())) e |= POLLOUT;
    return e;
  }

  short events_for_upstream(const Conn& c) const {
    short e = 0;
    if (c.phase == Phase::kUpstreamHandshake) {
      e |= POLLIN;
      if (SSL_want_write(c.upstream_ssl.get())) e |= POLLOUT;
    }
    if (c.phase == Phase::kProxyAnswer) {
      if (!c.to_upstream.empty()) e |= POLLOUT;
      else if (c.peek_again == Clock::time_point{}) e |= POLLIN;
    }
    if (relaying(c)) {
      if (!c.upstream_eof && c.to_guest.size() < options.max_buffer) e |= POLLIN;
      if (!c.to_upstream.empty()) e |= POLLOUT;
    }
    return e;
  }

  void run() {
    std::vector<pollfd> fds;
    std::vector<Conn*> owners;
    while (!stop.load()) {
      auto now = Clock::now();
      accept_new(now);
      int timeout = -1;
      for (auto it = conns.begin(); it != conns.end();) {
        Conn& c = *it;
        if (!finished(c) && !relaying(c) && now >= c.deadline) fail(c, "the TLS handshakes did not finish in time");
        if (!finished(c) && c.peek_again != Clock::time_point{} && now >= c.peek_again) {
          c.peek_again = {};
          step(c);
        }
        if (finished(c)) {
          it = conns.erase(it);
          continue;
        }
        if (!relaying(c)) {
          auto until = c.peek_again != Clock::time_point{} ? c.peek_again : c.deadline;
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
          if (timeout < 0 || left < timeout) timeout = static_cast<int>(left);
        }
        ++it;
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        stats.open = conns.size();
      }
      fds.clear();
      owners.clear();
      fds.push_back(pollfd{wake.get(), POLLIN, 0});
      owners.push_back(nullptr);
      for (Conn& c : conns) {
        fds.push_back(pollfd{c.c.guest.get(), events_for_guest(c), 0});
        owners.push_back(&c);
        fds.push_back(pollfd{c.c.upstream.get(), events_for_upstream(c), 0});
        owners.push_back(&c);
      }
      int n = ::poll(fds.data(), fds.size(), timeout);
      if (n < 0 && errno != EINTR) break;
      if (fds[0].revents & POLLIN) {
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(wake.get(), &count, sizeof count);
      }
      Conn* last = nullptr;
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (!fds[i].revents || owners[i] == last) continue;
        last = owners[i];
        step(*owners[i]);
      }
    }
    conns.clear();
  }
};

Interceptor::Interceptor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Interceptor>> Interceptor::start(LeafCache leaves, InterceptorOptions options, Log log) {
  auto impl = std::make_unique<Impl>(std::move(leaves), std::move(options), std::move(log));
  MOAT_TRY(impl->make_contexts());
  impl->wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->wake) return errno_error("eventfd");
  Impl* raw = impl.get();
  std::unique_ptr<Interceptor> out(new Interceptor(std::move(impl)));
  raw->thread = std::thread([raw] {
    if (raw->options.on_thread_start) raw->options.on_thread_start();
    raw->run();
  });
  return out;
}

Interceptor::~Interceptor() {
  impl_->stop = true;
  std::uint64_t one = 1;
  [[maybe_unused]] auto w = ::write(impl_->wake.get(), &one, sizeof one);
  if (impl_->thread.joinable()) impl_->thread.join();
}

void Interceptor::add(InterceptedConnection connection) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->incoming.push_back(std::move(connection));
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto w = ::write(impl_->wake.get(), &one, sizeof one);
}

Interceptor::Stats Interceptor::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

}  // namespace moat::tls
