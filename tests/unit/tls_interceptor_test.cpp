// The TLS interceptor (src/tls/interceptor.h) between a real OpenSSL client
// on one end of a socketpair (the guest's side) and a TLS server on
// 127.0.0.1 whose certificate an upstream test CA signed.
#include "tls/interceptor.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>

#include <csignal>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

namespace moat::tls {
namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

// A byte the pattern has at `i`: what the server sends, what the guest uploads.
char pattern(std::size_t i) { return static_cast<char>((i * 7 + i / 251) & 0xff); }

std::uint64_t fnv(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool read_exact(SSL* ssl, std::string& out, std::size_t n) {
  char buf[16384];
  while (out.size() < n) {
    int r = SSL_read(ssl, buf, static_cast<int>(std::min(sizeof buf, n - out.size())));
    if (r <= 0) return false;
    out.append(buf, static_cast<std::size_t>(r));
  }
  return true;
}

std::string read_line(SSL* ssl) {
  std::string line;
  char c;
  while (SSL_read(ssl, &c, 1) == 1 && c != '\n' && line.size() < 256) line += c;
  return line;
}

// A TCP connection to 127.0.0.1:port.
UniqueFd connect_loopback(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

// A listening TCP socket on 127.0.0.1, on a port the kernel picks.
int listen_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(fd, 8), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// One TLS server on 127.0.0.1 serving one connection at a time: it reads
// "PUT LEN\n" and LEN bytes, answers "got LEN HASH\n", then sends `download`
// bytes of the pattern and closes with close_notify.
class TestServer {
 public:
  TestServer(X509* cert, EVP_PKEY* key, std::vector<std::string> alpn, std::size_t download)
      : alpn_(std::move(alpn)), download_(download) {
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate(ctx_.get(), cert);
    SSL_CTX_use_PrivateKey(ctx_.get(), key);
    SSL_CTX_set_alpn_select_cb(ctx_.get(), select_alpn, this);
    listener_ = listen_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~TestServer() {
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }

  // A TCP connection to the server: the interceptor's upstream socket.
  UniqueFd connect() const { return connect_loopback(port_); }

  // Close the TCP connection without a close_notify, as many servers do.
  std::atomic<bool> abrupt_close{false};

  std::uint16_t port() const { return port_; }

  std::string served_name() {
    std::lock_guard<std::mutex> lock(mu_);
    return server_name_;
  }

 private:
  static int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                         unsigned int inlen, void* arg) {
    auto* self = static_cast<TestServer*>(arg);
    for (const auto& proto : self->alpn_) {
      for (unsigned int at = 0; at < inlen; at += 1 + in[at]) {
        if (in[at] == proto.size() && std::memcmp(in + at + 1, proto.data(), proto.size()) == 0) {
          *out = in + at + 1;
          *outlen = in[at];
          return SSL_TLSEXT_ERR_OK;
        }
      }
    }
    return SSL_TLSEXT_ERR_NOACK;
  }

  void serve() {
    while (true) {
      int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      SslPtr ssl(SSL_new(ctx_.get()));
      SSL_set_fd(ssl.get(), fd);
      if (SSL_accept(ssl.get()) == 1) {
        if (const char* sni = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name)) {
          std::lock_guard<std::mutex> lock(mu_);
          server_name_ = sni;
        }
        std::string line = read_line(ssl.get());
        std::size_t len = std::stoul(line.substr(4));
        std::string body;
        if (read_exact(ssl.get(), body, len)) {
          std::string answer = "got " + std::to_string(body.size()) + " " + std::to_string(fnv(body)) + "\n";
          SSL_write(ssl.get(), answer.data(), static_cast<int>(answer.size()));
          std::string data(download_, '\0');
          for (std::size_t i = 0; i < data.size(); ++i) data[i] = pattern(i);
          for (std::size_t at = 0; at < data.size();) {
            int n = SSL_write(ssl.get(), data.data() + at, static_cast<int>(std::min<std::size_t>(data.size() - at, 65536)));
            if (n <= 0) break;
            at += static_cast<std::size_t>(n);
          }
          if (!abrupt_close) SSL_shutdown(ssl.get());
        }
      }
      ERR_clear_error();
      ::close(fd);
    }
  }

  SslCtxPtr ctx_;
  std::vector<std::string> alpn_;
  std::size_t download_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::string server_name_;
};


// Reads up to and including a blank line, a byte at a time (nothing after
// it is taken); what was read when the peer closed first.
std::string read_head(int fd) {
  std::string head;
  char c;
  while (head.size() < 65536 && ::read(fd, &c, 1) == 1) {
    head += c;
    if (head.size() >= 4 && head.compare(head.size() - 4, 4, "\r\n\r\n") == 0) break;
  }
  return head;
}

// An HTTP proxy on 127.0.0.1, one connection at a time: it reads a request
// head, keeps it, sends `answer`, and when that is a 2xx relays both ways
// to 127.0.0.1:target_port, whatever the CONNECT named.
class FakeProxy {
 public:
  explicit FakeProxy(std::uint16_t target_port, std::string answer = "HTTP/1.1 200 Connection established\r\n\r\n")
      : target_port_(target_port), answer_(std::move(answer)) {
    listener_ = listen_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeProxy() {
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  UniqueFd connect() const { return connect_loopback(port_); }
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }

 private:
  void serve() {
    while (true) {
      UniqueFd client(::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) return;
      std::string head = read_head(client.get());
      {
        std::lock_guard<std::mutex> lock(mu_);
        heads_.push_back(head);
      }
      if (head.empty()) continue;
      [[maybe_unused]] auto w = ::write(client.get(), answer_.data(), answer_.size());
      if (answer_.rfind("HTTP/1.1 2", 0) != 0) continue;
      UniqueFd server = connect_loopback(target_port_);
      relay(client.get(), server.get());
    }
  }
  static void relay(int a, int b) {
    bool open[2] = {true, true};
    while (open[0] || open[1]) {
      pollfd fds[2] = {{a, static_cast<short>(open[0] ? POLLIN : 0), 0}, {b, static_cast<short>(open[1] ? POLLIN : 0), 0}};
      if (::poll(fds, 2, 10000) <= 0) return;
      for (int i = 0; i < 2; ++i) {
        if (!fds[i].revents) continue;
        char buf[65536];
        ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        int other = i == 0 ? b : a;
        if (n <= 0) {
          open[i] = false;
          ::shutdown(other, SHUT_WR);
        } else if (::write(other, buf, static_cast<std::size_t>(n)) != n) {
          return;
        }
      }
    }
  }

  std::uint16_t target_port_;
  std::string answer_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> heads_;
};

std::string alpn_wire(const std::vector<std::string>& protos) {
  std::string wire;
  for (const auto& p : protos) wire += static_cast<char>(p.size()) + p;
  return wire;
}

class TlsInterceptor : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // as in the shim (interceptor.h)
    std::string tmpl = ::testing::TempDir() + "moat-intercept-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    home_ = tmpl;
    auto ca = CertificateAuthority::load_or_create(home_ + "/tls");
    ASSERT_TRUE(ca.ok()) << ca.error().message;
    moat_ca_pem_ = ca->certificate_pem();
    auto leaf_key = generate_p256_key();
    auto upstream_ca = CertificateAuthority::load_or_create(home_ + "/upstream-ca");
    ASSERT_TRUE(upstream_ca.ok());
    upstream_ca_ = std::make_unique<CertificateAuthority>(std::move(*upstream_ca));
    auto server_key = generate_p256_key();
    server_key_ = std::move(*server_key);
    options_.host_roots = false;
    options_.upstream_ca_file = ca_certificate_path(home_ + "/upstream-ca");
    leaves_ = std::make_unique<LeafCache>(std::move(*ca), std::move(*leaf_key));
  }
  void TearDown() override {
    interceptor_.reset();
    std::filesystem::remove_all(home_);
  }

  void start() {
    auto i = Interceptor::start(std::move(*leaves_), options_, [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.push_back(line);
    });
    ASSERT_TRUE(i.ok()) << i.error().message;
    interceptor_ = std::move(*i);
  }

  X509Ptr server_cert(const std::string& name) { return std::move(upstream_ca_->issue(name, server_key_.get())).value(); }

  // The guest's TLS client over a socketpair whose other end the
  // interceptor takes, with `upstream` as the connection's server.
  struct Guest {
    SslCtxPtr ctx;
    SslPtr ssl;
    UniqueFd fd;
  };
  Guest connect_guest(UniqueFd upstream, const std::string& sni, const std::vector<std::string>& alpn,
                      const std::string& address = "127.0.0.1", bool proxy = false) {
    int pair[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    interceptor_->add(InterceptedConnection{UniqueFd(pair[1]), std::move(upstream), address,
                                            "10.0.2.15:40000 -> " + address + (proxy ? ":3128" : ":443"), "",
                                            proxy});
    Guest g;
    g.fd = UniqueFd(pair[0]);
    g.ctx.reset(SSL_CTX_new(TLS_client_method()));
    BIO* bio = BIO_new_mem_buf(moat_ca_pem_.data(), static_cast<int>(moat_ca_pem_.size()));
    X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(g.ctx.get()), ca);
    X509_free(ca);
    SSL_CTX_set_verify(g.ctx.get(), SSL_VERIFY_PEER, nullptr);
    X509_STORE_set_flags(SSL_CTX_get_cert_store(g.ctx.get()), X509_V_FLAG_X509_STRICT);
    g.ssl.reset(SSL_new(g.ctx.get()));
    SSL_set_fd(g.ssl.get(), g.fd.get());
    if (!sni.empty()) {
      SSL_set_tlsext_host_name(g.ssl.get(), sni.c_str());
      SSL_set1_host(g.ssl.get(), sni.c_str());
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(g.ssl.get()), address.c_str());
    }
    if (!alpn.empty()) {
      std::string wire = alpn_wire(alpn);
      SSL_set_alpn_protos(g.ssl.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned int>(wire.size()));
    }
    return g;
  }

  std::vector<std::string> log() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return log_;
  }

  // Waits for the interceptor to have no connection open.
  void wait_closed() {
    for (int i = 0; i < 500 && interceptor_->stats().open > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(interceptor_->stats().open, 0u);
  }

  std::string home_, moat_ca_pem_;
  std::unique_ptr<CertificateAuthority> upstream_ca_;
  PkeyPtr server_key_;
  std::unique_ptr<LeafCache> leaves_;
  InterceptorOptions options_;
  std::unique_ptr<Interceptor> interceptor_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

TEST_F(TlsInterceptor, RelaysBothWaysByteExactBehindALeafForTheName) {
  auto cert = server_cert("api.example.test");
  constexpr std::size_t kDown = 3 * 1024 * 1024 + 17, kUp = 1024 * 1024 + 5;
  TestServer server(cert.get(), server_key_.get(), {}, kDown);
  start();
  auto g = connect_guest(server.connect(), "api.example.test", {});
  ASSERT_EQ(SSL_connect(g.ssl.get()), 1) << ERR_reason_error_string(ERR_get_error());

  // The guest sees a leaf for the name, from the sandbox's CA, not the server's.
  X509* peer = SSL_get0_peer_certificate(g.ssl.get());
  ASSERT_NE(peer, nullptr);
  EXPECT_EQ(X509_check_host(peer, "api.example.test", 0, 0, nullptr), 1);
  EXPECT_EQ(SSL_get_verify_result(g.ssl.get()), X509_V_OK);
  char issuer[256];
  X509_NAME_oneline(X509_get_issuer_name(peer), issuer, sizeof issuer);
  EXPECT_NE(std::string(issuer).find("moat sandbox TLS interception CA"), std::string::npos) << issuer;

  std::string upload(kUp, '\0');
  for (std::size_t i = 0; i < kUp; ++i) upload[i] = pattern(i);
  std::string head = "PUT " + std::to_string(kUp) + "\n";
  ASSERT_EQ(SSL_write(g.ssl.get(), head.data(), static_cast<int>(head.size())), static_cast<int>(head.size()));
  for (std::size_t at = 0; at < upload.size();) {
    int n = SSL_write(g.ssl.get(), upload.data() + at, static_cast<int>(std::min<std::size_t>(65536, kUp - at)));
    ASSERT_GT(n, 0);
    at += static_cast<std::size_t>(n);
  }
  EXPECT_EQ(read_line(g.ssl.get()), "got " + std::to_string(kUp) + " " + std::to_string(fnv(upload)));
  std::string down;
  ASSERT_TRUE(read_exact(g.ssl.get(), down, kDown));
  for (std::size_t i = 0; i < kDown; ++i) ASSERT_EQ(down[i], pattern(i)) << "byte " << i;
  char extra;
  EXPECT_EQ(SSL_read(g.ssl.get(), &extra, 1), 0) << "the server's close reaches the guest";
  EXPECT_EQ(SSL_get_error(g.ssl.get(), 0), SSL_ERROR_ZERO_RETURN);
  SSL_shutdown(g.ssl.get());
  EXPECT_EQ(server.served_name(), "api.example.test") << "the server got the guest's SNI";
  wait_closed();
  EXPECT_EQ(interceptor_->stats().relayed, 1u);
  EXPECT_EQ(interceptor_->stats().refused, 0u);
  EXPECT_TRUE(log().empty());
}

TEST_F(TlsInterceptor, AServerThatClosesWithoutCloseNotifyStillDeliversEverything) {
  auto cert = server_cert("api.example.test");
  constexpr std::size_t kDown = 256 * 1024 + 3;
  TestServer server(cert.get(), server_key_.get(), {}, kDown);
  server.abrupt_close = true;
  start();
  for (int round = 0; round < 5; ++round) {
    auto g = connect_guest(server.connect(), "api.example.test", {});
    ASSERT_EQ(SSL_connect(g.ssl.get()), 1);
    std::string head = "PUT 0\n";
    SSL_write(g.ssl.get(), head.data(), static_cast<int>(head.size()));
    EXPECT_EQ(read_line(g.ssl.get()), "got 0 " + std::to_string(fnv("")));
    std::string down;
    ASSERT_TRUE(read_exact(g.ssl.get(), down, kDown)) << "round " << round;
    char extra;
    EXPECT_EQ(SSL_read(g.ssl.get(), &extra, 1), 0) << "and then a clean end";
  }
  EXPECT_TRUE(log().empty()) << log()[0];
}

TEST_F(TlsInterceptor, TheGuestGetsTheProtocolTheServerChose) {
  auto cert = server_cert("api.example.test");
  start();
  struct Case {
    std::vector<std::string> server;
    std::string expect;
  } cases[] = {{{"h2", "http/1.1"}, "h2"}, {{"http/1.1"}, "http/1.1"}, {{}, ""}};
  for (const auto& c : cases) {
    TestServer server(cert.get(), server_key_.get(), c.server, 0);
    auto g = connect_guest(server.connect(), "api.example.test", {"h2", "http/1.1"});
    ASSERT_EQ(SSL_connect(g.ssl.get()), 1);
    const unsigned char* proto = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(g.ssl.get(), &proto, &len);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(proto), len), c.expect);
    std::string head = "PUT 0\n";
    SSL_write(g.ssl.get(), head.data(), static_cast<int>(head.size()));
    EXPECT_EQ(read_line(g.ssl.get()), "got 0 " + std::to_string(fnv("")));
  }
}

TEST_F(TlsInterceptor, AServerThatDoesNotVerifyIsRefusedAndLogged) {
  auto wrong_name = server_cert("other.example.test");
  auto stranger_ca = CertificateAuthority::load_or_create(home_ + "/stranger-ca");
  ASSERT_TRUE(stranger_ca.ok());
  auto unknown_ca = stranger_ca->issue("api.example.test", server_key_.get()).value();
  start();
  int n = 0;
  for (X509* cert : {wrong_name.get(), unknown_ca.get()}) {
    TestServer server(cert, server_key_.get(), {}, 0);
    auto g = connect_guest(server.connect(), "api.example.test", {});
    EXPECT_NE(SSL_connect(g.ssl.get()), 1) << "the guest's handshake fails";
    ERR_clear_error();
    ++n;
    wait_closed();
    EXPECT_EQ(interceptor_->stats().upstream_rejected, static_cast<std::uint64_t>(n));
  }
  auto lines = log();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "tls: 10.0.2.15:40000 -> 127.0.0.1:443 (api.example.test): the server's certificate does not verify for "
            "\"api.example.test\": hostname mismatch");
  EXPECT_EQ(lines[1],
            "tls: 10.0.2.15:40000 -> 127.0.0.1:443 (api.example.test): the server's certificate does not verify for "
            "\"api.example.test\": unable to get local issuer certificate");
  EXPECT_EQ(interceptor_->stats().relayed, 0u);
}

TEST_F(TlsInterceptor, WithoutAServerNameTheAddressIsTheName) {
  auto cert = server_cert("127.0.0.1");
  TestServer server(cert.get(), server_key_.get(), {}, 10);
  start();
  auto g = connect_guest(server.connect(), "", {});
  ASSERT_EQ(SSL_connect(g.ssl.get()), 1);
  EXPECT_EQ(X509_check_ip_asc(SSL_get0_peer_certificate(g.ssl.get()), "127.0.0.1", 0), 1);
  std::string head = "PUT 0\n";
  SSL_write(g.ssl.get(), head.data(), static_cast<int>(head.size()));
  EXPECT_EQ(read_line(g.ssl.get()), "got 0 " + std::to_string(fnv("")));
  EXPECT_EQ(server.served_name(), "");
}

TEST_F(TlsInterceptor, AGuestThatIsNotSpeakingTlsOrSaysNothingIsDropped) {
  options_.handshake_timeout = std::chrono::milliseconds(300);
  auto cert = server_cert("api.example.test");
  TestServer server(cert.get(), server_key_.get(), {}, 0);
  start();
  auto plain = connect_guest(server.connect(), "api.example.test", {});
  std::string request = "GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n";
  ASSERT_EQ(::write(plain.fd.get(), request.data(), request.size()), static_cast<ssize_t>(request.size()));
  auto silent = connect_guest(server.connect(), "api.example.test", {});
  wait_closed();
  char buf[64];
  EXPECT_LE(::read(plain.fd.get(), buf, sizeof buf), 0) << "closed";
  EXPECT_EQ(::read(silent.fd.get(), buf, sizeof buf), 0) << "closed";
  auto lines = log();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("tls: 10.0.2.15:40000 -> 127.0.0.1:443: the guest's TLS handshake failed: ", 0), 0u)
      << lines[0];
  EXPECT_EQ(lines[1], "tls: 10.0.2.15:40000 -> 127.0.0.1:443: the TLS handshakes did not finish in time");
  EXPECT_EQ(interceptor_->stats().refused, 2u);
}

// --tls-bypass: the guest's ClientHello names a bypassed server, so the
// bytes go through as they are and the guest sees the server's own chain.
TEST_F(TlsInterceptor, ABypassedNameGetsTheServersOwnCertificate) {
  options_.bypass = {"*.pinned.test"};
  auto cert = server_cert("api.pinned.test");
  TestServer server(cert.get(), server_key_.get(), {"h2"}, 100);
  start();
  auto g = connect_guest(server.connect(), "api.pinned.test", {"h2", "http/1.1"});
  // The guest trusts the server's CA here, as a pinning client would.
  X509_STORE_add_cert(SSL_CTX_get_cert_store(g.ctx.get()), upstream_ca_->certificate());
  ASSERT_EQ(SSL_connect(g.ssl.get()), 1) << ERR_reason_error_string(ERR_get_error());
  char issuer[256];
  X509_NAME_oneline(X509_get_issuer_name(SSL_get0_peer_certificate(g.ssl.get())), issuer, sizeof issuer);
  EXPECT_EQ(std::string(issuer), [&] {
    char ca[256];
    X509_NAME_oneline(X509_get_subject_name(upstream_ca_->certificate()), ca, sizeof ca);
    return std::string(ca);
  }());
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(g.ssl.get(), &proto, &len);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(proto), len), "h2");
  std::string head = "PUT 3\nabc";
  SSL_write(g.ssl.get(), head.data(), static_cast<int>(head.size()));
  EXPECT_EQ(read_line(g.ssl.get()), "got 3 " + std::to_string(fnv("abc")));
  std::string down;
  ASSERT_TRUE(read_exact(g.ssl.get(), down, 100));
  SSL_shutdown(g.ssl.get());
  g.fd.reset();
  wait_closed();
  EXPECT_EQ(interceptor_->stats().bypassed, 1u);
  EXPECT_EQ(interceptor_->stats().relayed, 0u);
}

// --tls-proxy: the guest's CONNECT goes to the proxy as it was sent, the
// proxy's 200 comes back, and the TLS inside the tunnel is intercepted for
// the CONNECT's target.
TEST_F(TlsInterceptor, ATunnelThroughAProxyIsInterceptedForItsTarget) {
  auto cert = server_cert("api.example.test");
  TestServer server(cert.get(), server_key_.get(), {}, 100);
  FakeProxy proxy(server.port());
  std::vector<std::string> judged;
  options_.tunnel_refusal = [&](const std::string& host, std::uint16_t port) {
    judged.push_back(host + " " + std::to_string(port));
    return std::string();
  };
  start();
  auto g = connect_guest(proxy.connect(), "api.example.test", {}, "127.0.0.1", true);
  std::string connect = "CONNECT API.example.test:443 HTTP/1.1\r\nHost: API.example.test:443\r\n\r\n";
  ASSERT_EQ(::write(g.fd.get(), connect.data(), connect.size()), static_cast<ssize_t>(connect.size()));
  EXPECT_EQ(read_head(g.fd.get()), "HTTP/1.1 200 Connection established\r\n\r\n");
  ASSERT_EQ(SSL_connect(g.ssl.get()), 1) << ERR_reason_error_string(ERR_get_error());
  char issuer[256];
  X509_NAME_oneline(X509_get_issuer_name(SSL_get0_peer_certificate(g.ssl.get())), issuer, sizeof issuer);
  EXPECT_NE(std::string(issuer).find("moat sandbox TLS interception CA"), std::string::npos) << issuer;
  std::string head = "PUT 3\nabc";
  SSL_write(g.ssl.get(), head.data(), static_cast<int>(head.size()));
  EXPECT_EQ(read_line(g.ssl.get()), "got 3 " + std::to_string(fnv("abc")));
  std::string down;
  ASSERT_TRUE(read_exact(g.ssl.get(), down, 100));
  SSL_shutdown(g.ssl.get());
  g.fd.reset();
  wait_closed();
  EXPECT_EQ(proxy.heads(), std::vector<std::string>{connect}) << "the proxy got the CONNECT as it was sent";
  EXPECT_EQ(judged, std::vector<std::string>{"api.example.test 443"});
  EXPECT_EQ(server.served_name(), "api.example.test");
  EXPECT_EQ(interceptor_->stats().tunnels, 1u);
  EXPECT_EQ(interceptor_->stats().relayed, 1u);
  EXPECT_TRUE(log().empty()) << log()[0];
}

// What moat refuses never reaches the proxy: the guest gets the reason.
TEST_F(TlsInterceptor, ATunnelThePolicyRefusesOrThatIsNotConnectGetsAnAnswerFromMoat) {
  TestServer server(server_cert("api.example.test").get(), server_key_.get(), {}, 0);
  FakeProxy proxy(server.port());
  options_.tunnel_refusal = [](const std::string& host, std::uint16_t) {
    return host == "evil.test" ? std::string("--deny evil.test") : std::string();
  };
  start();
  struct Case {
    std::string request, status, body;
  } cases[] = {
      {"CONNECT evil.test:443 HTTP/1.1\r\n\r\n", "HTTP/1.1 403 Forbidden",
       "moat: the tunnel to evil.test:443 is refused: --deny evil.test\n"},
      {"GET http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\n\r\n", "HTTP/1.1 400 Bad Request",
       "moat: not a CONNECT request: the method is GET (only CONNECT passes a declared proxy)\n"},
      {"CONNECT api.example.test HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request",
       "moat: not a CONNECT request: the target is not host:port\n"},
  };
  for (const auto& c : cases) {
    auto g = connect_guest(proxy.connect(), "", {}, "127.0.0.1", true);
    ASSERT_EQ(::write(g.fd.get(), c.request.data(), c.request.size()), static_cast<ssize_t>(c.request.size()));
    std::string answer;
    char buf[4096];
    for (ssize_t n; (n = ::read(g.fd.get(), buf, sizeof buf)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
    EXPECT_EQ(answer, c.status + "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(c.body.size()) +
                          "\r\nConnection: close\r\n\r\n" + c.body);
  }
  wait_closed();
  for (const auto& head : proxy.heads()) EXPECT_EQ(head, "") << "the proxy saw nothing but closes";
  EXPECT_EQ(interceptor_->stats().tunnels_refused, 3u);
  auto lines = log();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "tls: 10.0.2.15:40000 -> 127.0.0.1:3128: the tunnel to evil.test:443 is refused: --deny evil.test");
}

// The proxy's refusal (here 407) reaches the guest whole, then the end.
TEST_F(TlsInterceptor, AProxysRefusalReachesTheGuest) {
  std::string refusal = "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 5\r\n\r\nlogin";
  FakeProxy proxy(1, refusal);
  start();
  auto g = connect_guest(proxy.connect(), "", {}, "127.0.0.1", true);
  std::string connect = "CONNECT api.example.test:443 HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::write(g.fd.get(), connect.data(), connect.size()), static_cast<ssize_t>(connect.size()));
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = ::read(g.fd.get(), buf, sizeof buf)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
  EXPECT_EQ(answer, refusal);
  wait_closed();
  EXPECT_EQ(interceptor_->stats().tunnels, 0u);
  EXPECT_EQ(log(), std::vector<std::string>{
                       "tls: 10.0.2.15:40000 -> 127.0.0.1:3128: the proxy answered 407 to CONNECT api.example.test:443"});
}

// The TLS inside must be for the name the CONNECT asked for (the one the
// policy judged); a placeholder in the CONNECT itself is a violation.
TEST_F(TlsInterceptor, ATunnelsTlsMustNameItsTargetAndItsConnectCarriesNoPlaceholder) {
  TestServer server(server_cert("api.example.test").get(), server_key_.get(), {}, 0);
  FakeProxy proxy(server.port());
  options_.secrets = {SecretBinding{"API_KEY", "moat-secret-0123", "real-value", {"api.example.test"}}};
  start();
  auto g = connect_guest(proxy.connect(), "other.example.test", {}, "127.0.0.1", true);
  std::string connect = "CONNECT api.example.test:443 HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::write(g.fd.get(), connect.data(), connect.size()), static_cast<ssize_t>(connect.size()));
  EXPECT_EQ(read_head(g.fd.get()), "HTTP/1.1 200 Connection established\r\n\r\n");
  EXPECT_NE(SSL_connect(g.ssl.get()), 1);
  ERR_clear_error();
  auto leaky = connect_guest(proxy.connect(), "", {}, "127.0.0.1", true);
  std::string with_placeholder =
      "CONNECT api.example.test:443 HTTP/1.1\r\nProxy-Authorization: Bearer moat-secret-0123\r\n\r\n";
  ASSERT_EQ(::write(leaky.fd.get(), with_placeholder.data(), with_placeholder.size()),
            static_cast<ssize_t>(with_placeholder.size()));
  char buf[64];
  EXPECT_LE(::read(leaky.fd.get(), buf, sizeof buf), 0) << "reset";
  wait_closed();
  auto lines = log();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "tls: 10.0.2.15:40000 -> 127.0.0.1:3128 through the proxy to api.example.test:443 (other.example.test): "
            "the ClientHello names \"other.example.test\", but the CONNECT was for api.example.test:443");
  EXPECT_EQ(lines[1],
            "tls: 10.0.2.15:40000 -> 127.0.0.1:3128 (127.0.0.1): secret API_KEY is not bound to the proxy "
            "127.0.0.1, and its placeholder was in the request; connection reset");
  EXPECT_EQ(interceptor_->stats().violations, 1u);
  auto heads = proxy.heads();
  EXPECT_EQ(std::count_if(heads.begin(), heads.end(), [](const std::string& h) { return !h.empty(); }), 1)
      << "the leaky CONNECT never reached the proxy";
}

// A tunnel to a port whose TLS is not intercepted (or, with only secrets,
// to a host no secret is bound to) is relayed as it is.
TEST_F(TlsInterceptor, ATunnelThatIsNotInterceptedIsRelayedAsItIs) {
  TestServer server(server_cert("api.example.test").get(), server_key_.get(), {}, 10);
  FakeProxy proxy(server.port());
  options_.tls_ports = {443};
  start();
  auto g = connect_guest(proxy.connect(), "api.example.test", {}, "127.0.0.1", true);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(g.ctx.get()), upstream_ca_->certificate());
  std::string connect = "CONNECT api.example.test:8443 HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::write(g.fd.get(), connect.data(), connect.size()), static_cast<ssize_t>(connect.size()));
  EXPECT_EQ(read_head(g.fd.get()), "HTTP/1.1 200 Connection established\r\n\r\n");
  ASSERT_EQ(SSL_connect(g.ssl.get()), 1) << ERR_reason_error_string(ERR_get_error());
  char issuer[256], ca[256];
  X509_NAME_oneline(X509_get_issuer_name(SSL_get0_peer_certificate(g.ssl.get())), issuer, sizeof issuer);
  X509_NAME_oneline(X509_get_subject_name(upstream_ca_->certificate()), ca, sizeof ca);
  EXPECT_EQ(std::string(issuer), std::string(ca)) << "the server's own certificate";
  std::string head = "PUT 0\n";
  SSL_write(g.ssl.get(), head.data(), static_cast<int>(head.size()));
  EXPECT_EQ(read_line(g.ssl.get()), "got 0 " + std::to_string(fnv("")));
  EXPECT_EQ(interceptor_->stats().tunnels, 1u);
  EXPECT_EQ(interceptor_->stats().relayed, 0u);
}

TEST_F(TlsInterceptor, AnUnreadableUpstreamCaFileIsRefusedWithItsPath) {
  options_.upstream_ca_file = home_ + "/none.pem";
  auto i = Interceptor::start(std::move(*leaves_), options_, nullptr);
  ASSERT_FALSE(i.ok());
  EXPECT_EQ(i.error().code, EINVAL);
  EXPECT_EQ(i.error().message, "open " + home_ + "/none.pem: No such file or directory");
  std::ofstream(home_ + "/empty.pem") << "no certificates here\n";
  options_.upstream_ca_file = home_ + "/empty.pem";
  auto leaf_key = generate_p256_key();
  auto ca = CertificateAuthority::load_or_create(home_ + "/tls");
  auto j = Interceptor::start(LeafCache(std::move(*ca), std::move(*leaf_key)), options_, nullptr);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.error().message, home_ + "/empty.pem: no PEM certificate in it");
}

}  // namespace
}  // namespace moat::tls
