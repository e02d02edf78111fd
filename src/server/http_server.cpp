#include "server/http_server.h"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including it.
#include <utility>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <type_traits>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <nlohmann/json.hpp>

#include "moat/version.h"
#include "server/api_error.h"
#include "server/bearer_token.h"
#include "util/ascii_case.h"

namespace moat::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kHeaderLimit = 16 << 10;
constexpr std::size_t kChunk = 64 << 10;
constexpr std::size_t kWsQueue = 16;                  // messages each way
constexpr std::size_t kWsMaxMessage = 1 << 20;        // from a client
constexpr auto kWriteTimeout = std::chrono::seconds(120);  // a client that takes nothing for this long is dropped
constexpr auto kShutdownGrace = std::chrono::seconds(10);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

auto on_error(beast::error_code& ec) { return asio::redirect_error(use_awaitable, ec); }

// What every connection shares.
struct Shared {
  asio::io_context io{1};
  ServerState& state;
  std::string token;
  bool tcp = false;
  std::optional<ssl::context> tls;  // --tls-cert/--tls-key: every TCP connection is TLS
  bool stopping = false;
  std::atomic<int> threads{0};  // handler and producer threads alive
  std::mutex log_mu;

  explicit Shared(ServerState& s) : state(s) {}
};

// A wake-up a coroutine waits for, given from any thread. Kept in a
// shared_ptr: a notification posted from a thread holds it alive.
class Event {
 public:
  explicit Event(asio::any_io_executor ex) : timer_(ex) {}
  static void notify(const std::shared_ptr<Event>& e) {
    asio::post(e->timer_.get_executor(), [e] {
      e->set_ = true;
      e->timer_.cancel();
    });
  }
  awaitable<void> wait() {
    while (!set_) {
      timer_.expires_at(Clock::time_point::max());
      beast::error_code ec;
      co_await timer_.async_wait(on_error(ec));
    }
    set_ = false;
  }

 private:
  asio::steady_timer timer_;
  bool set_ = false;
};

// Runs `f` on a thread of its own and resumes when it returned; false if
// no thread could be made.
template <class F>
awaitable<bool> run_on_thread(Shared& sh, F f) {
  auto done = std::make_shared<Event>(co_await asio::this_coro::executor);
  sh.threads++;
  try {
    std::thread([f = std::move(f), done, &sh]() mutable {
      f();
      Event::notify(done);
      sh.threads--;
    }).detach();
  } catch (const std::system_error&) {
    sh.threads--;
    co_return false;
  }
  co_await done->wait();
  co_return true;
}

// Starts `f` on a thread of its own without waiting (a streamed body's
// producer); false if no thread could be made.
template <class F>
bool start_thread(Shared& sh, F f) {
  sh.threads++;
  try {
    std::thread([f = std::move(f), &sh]() mutable {
      f();
      sh.threads--;
    }).detach();
  } catch (const std::system_error&) {
    sh.threads--;
    return false;
  }
  return true;
}

std::string text_of(beast::string_view s) { return std::string(s.data(), s.size()); }

// The WebSocket side of a MessageChannel: the handler's threads on one end,
// the connection's read and write loops (on the event loop) on the other.
class WsChannel : public MessageChannel {
 public:
  explicit WsChannel(asio::any_io_executor ex)
      : out_ready_(std::make_shared<Event>(ex)), in_space_(std::make_shared<Event>(ex)) {}

  bool send(WsMessage message) override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return out_.size() < kWsQueue || gone_ || close_requested_; });
    if (gone_ || close_requested_) return false;
    out_.push_back(std::move(message));
    lock.unlock();
    Event::notify(out_ready_);
    return true;
  }

  std::optional<WsMessage> receive() override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !in_.empty() || gone_ || close_requested_; });
    if (in_.empty() || close_requested_) return std::nullopt;
    WsMessage m = std::move(in_.front());
    in_.pop_front();
    lock.unlock();
    Event::notify(in_space_);
    return m;
  }

  void close(const std::string& reason) override {
    {
      std::lock_guard lock(mu_);
      if (close_requested_) return;
      close_requested_ = true;
      close_reason_ = reason;
    }
    cv_.notify_all();
    Event::notify(out_ready_);
  }

  template <class Ws>
  awaitable<void> read_loop(std::shared_ptr<Ws> ws) {
    for (;;) {
      beast::flat_buffer buffer;
      beast::error_code ec;
      co_await ws->async_read(buffer, on_error(ec));
      if (ec) {
        mark_gone();
        co_return;
      }
      WsMessage m{ws->got_binary(), beast::buffers_to_string(buffer.data())};
      std::unique_lock lock(mu_);
      while (in_.size() >= kWsQueue && !gone_ && !close_requested_) {
        lock.unlock();
        co_await in_space_->wait();
        lock.lock();
      }
      if (close_requested_) continue;  // read on, for the close handshake
      in_.push_back(std::move(m));
      lock.unlock();
      cv_.notify_all();
    }
  }

  template <class Ws>
  awaitable<void> write_loop(std::shared_ptr<Ws> ws) {
    for (;;) {
      std::unique_lock lock(mu_);
      if (gone_) co_return;
      if (out_.empty()) {
        if (close_requested_) {
          std::string reason = close_reason_.substr(0, 120);
          lock.unlock();
          beast::error_code ec;
          co_await ws->async_close(websocket::close_reason(websocket::close_code::normal, reason), on_error(ec));
          co_return;
        }
        lock.unlock();
        co_await out_ready_->wait();
        continue;
      }
      WsMessage m = std::move(out_.front());
      out_.pop_front();
      lock.unlock();
      cv_.notify_all();
      ws->binary(m.binary);
      beast::error_code ec;
      co_await ws->async_write(asio::buffer(m.data), on_error(ec));
      if (ec) {
        mark_gone();
        co_return;
      }
    }
  }

  void mark_gone() {
    {
      std::lock_guard lock(mu_);
      gone_ = true;
    }
    cv_.notify_all();
    Event::notify(out_ready_);
    Event::notify(in_space_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WsMessage> out_, in_;
  bool gone_ = false;
  bool close_requested_ = false;
  std::string close_reason_;
  std::shared_ptr<Event> out_ready_, in_space_;
};

// The channel's read loop may outlive the request that started it (until
// the socket reports the close): its frame holds the channel.
template <class Ws>
awaitable<void> read_messages(std::shared_ptr<WsChannel> channel, std::shared_ptr<Ws> ws) {
  co_await channel->read_loop(ws);
}

// Counts a connection while it lives.
struct ConnectionCount {
  std::atomic<std::uint64_t>& n;
  explicit ConnectionCount(std::atomic<std::uint64_t>& c) : n(c) { n++; }
  ~ConnectionCount() { n--; }
};

template <class T>
struct IsTls : std::false_type {};
template <class Next>
struct IsTls<beast::ssl_stream<Next>> : std::true_type {};

// A connection over `Stream`: beast::basic_stream of a unix or TCP socket,
// or beast::ssl_stream of the TCP one. Timeouts and the socket itself are
// the lowest layer's.
template <class Stream>
class Connection : public std::enable_shared_from_this<Connection<Stream>> {
 public:
  static constexpr bool kTls = IsTls<Stream>::value;

  template <class Socket>
  Connection(Shared& sh, Socket socket)
      : sh_(sh), stream_(make_stream(sh, std::move(socket))), count_(sh.state.counters.connections) {}

  awaitable<void> run() {
    if (co_await handshake()) {
      while (!sh_.stopping && co_await serve_one()) {
      }
    }
    if (moved_to_websocket_) co_return;
    beast::error_code ec;
    socket().shutdown(asio::socket_base::shutdown_both, ec);
    socket().close(ec);
  }

  // Past the connection limit: one typed answer, then closed.
  awaitable<void> shed() {
    if (!co_await handshake()) {
      beast::error_code ec;
      socket().close(ec);
      co_return;
    }
    Request req;
    req.method = "-";
    req.path = "-";
    co_await respond(req, error_response(503, "busy", "the server has too many connections; try again later"),
                     false, 11, Clock::now());
    beast::error_code ec;
    socket().close(ec);
  }

 private:
  template <class Socket>
  static Stream make_stream(Shared& sh, Socket socket) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *sh.tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  auto& lowest() { return beast::get_lowest_layer(stream_); }
  auto& socket() { return lowest().socket(); }

  // TLS first, within its own time limit: a client that connects and says
  // nothing, or speaks plain HTTP, is dropped (it gets no HTTP answer: the
  // first bytes were not TLS).
  awaitable<bool> handshake() {
    if constexpr (kTls) {
      lowest().expires_after(kHandshakeTimeout);
      beast::error_code ec;
      co_await stream_.async_handshake(ssl::stream_base::server, on_error(ec));
      if (ec) sh_.state.counters.tls_handshake_failures++;
      co_return !ec;
    } else {
      co_return true;
    }
  }

  struct InFlight {
    std::atomic<std::uint64_t>& n;
    explicit InFlight(std::atomic<std::uint64_t>& c) : n(c) { n++; }
    ~InFlight() { n--; }
  };

  // One request and its answer; false: close the connection.
  awaitable<bool> serve_one() {
    http::request_parser<http::buffer_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // per route, below
    lowest().expires_after(std::chrono::seconds(sh_.state.options.idle_timeout_s));
    beast::error_code ec;
    co_await http::async_read_header(stream_, buffer_, parser, on_error(ec));
    auto started = Clock::now();
    Request req;
    if (ec) {
      if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
        co_return false;
      req.method = "-";
      req.path = "-";
      int status = ec == http::error::header_limit ? 431 : 400;
      co_await respond(req, error_response(status, "invalid_argument", "bad request: " + ec.message()), false, 11,
                       started);
      co_return false;
    }
    auto& head = parser.get();
    unsigned version = head.version();
    bool keep_alive = head.keep_alive();
    req.method = text_of(head.method_string());
    req.target = text_of(head.target());
    if (auto bad = read_target(req)) {
      co_await respond(req, *bad, false, version, started);
      co_return false;
    }
    for (const auto& field : head) {
      std::string name = ascii_lower(text_of(field.name_string()));
      auto& value = req.headers[name];
      value += (value.empty() ? "" : ", ") + text_of(field.value());
    }
    bool has_body = !parser.is_done();

    // 1. Which route.
    bool path_known = false;
    const Route* route = sh_.state.router.match(req.method, req.path, req.params, path_known);

    // 2. Who is asking (TCP needs the token; the unix socket's mode is its
    // check; routes of their own auth check their own credentials).
    if (sh_.tcp && !(route && route->own_auth)) {
      std::string given = bearer_of(req.header("authorization"));
      if (given.empty() || !token_matches(given, sh_.token)) {
        Response r = error_response(401, "unauthenticated",
                                    given.empty() ? "this server needs the header Authorization: Bearer TOKEN"
                                                  : "the bearer token is wrong");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        co_await respond(req, r, false, version, started);
        co_return false;
      }
    }
    if (!route) {
      Response r = path_known ? error_response(405, "unsupported", req.method + " is not a method of " + req.path)
                              : error_response(404, "not_found", "no route " + req.path);
      co_await respond(req, r, keep_alive && !has_body, version, started);
      co_return keep_alive && !has_body;
    }
    if (route->websocket && !websocket::is_upgrade(head)) {
      co_await respond(req, error_response(426, "invalid_argument", req.path + " is a WebSocket: send an Upgrade"),
                       keep_alive && !has_body, version, started);
      co_return keep_alive && !has_body;
    }
    if (route->body == Route::Body::kNone && has_body) {
      co_await respond(req, error_response(400, "invalid_argument", req.method + " " + route->pattern + " takes no body"),
                       false, version, started);
      co_return false;
    }
    if (sh_.state.counters.in_flight >= sh_.state.options.max_in_flight) {
      co_await respond(req, error_response(503, "busy", "the server is handling too many requests; try again later"),
                       false, version, started);
      co_return false;
    }
    InFlight in_flight(sh_.state.counters.in_flight);

    // 3. The body, whole or streamed to the handler.
    if (route->body == Route::Body::kWhole && has_body) {
      if (auto bad = co_await read_whole_body(parser, req.body)) {
        co_await respond(req, *bad, false, version, started);
        co_return false;
      }
    }
    Response res;
    if (route->body == Route::Body::kStream) {
      bool complete = co_await run_with_streamed_body(parser, *route, req, res);
      keep_alive = keep_alive && complete;
    } else {
      auto gone = std::make_shared<std::atomic<bool>>(false);
      req.client_gone = [gone] { return gone->load(); };
      watch_for_hangup([gone] { gone->store(true); });
      bool ran = co_await run_on_thread(sh_, [&] { res = route->handler(req); });
      stop_watching();
      if (!ran) res = error_response(503, "busy", "the server could not start a thread for the request");
    }

    // 4. The answer.
    if (res.websocket && res.status == 101) {
      co_await run_websocket(parser.release(), std::move(res.websocket), req, started);
      co_return false;
    }
    if (res.stream) co_return co_await respond_streamed(req, res, keep_alive, version, started);
    co_return co_await respond(req, res, keep_alive, version, started);
  }

  // Splits the target into path and query; an error response if it is bad.
  static std::optional<Response> read_target(Request& req) {
    if (auto bad = split_target(req)) return error_response(400, "invalid_argument", *bad);
    return std::nullopt;
  }

  awaitable<void> send_continue_if_asked(const Request& req, unsigned version) {
    if (ascii_lower(req.header("expect")) != "100-continue") co_return;
    http::response<http::empty_body> cont{http::status::continue_, version};
    beast::error_code ec;
    lowest().expires_after(kWriteTimeout);
    co_await http::async_write(stream_, cont, on_error(ec));
  }

  // Reads the body into `out`, at most the body limit (413 past it).
  awaitable<std::optional<Response>> read_whole_body(http::request_parser<http::buffer_body>& parser,
                                                     std::string& out) {
    std::uint64_t limit = sh_.state.options.max_body_bytes;
    auto too_big = [&] {
      return error_response(413, "invalid_argument", "the request body is over " + std::to_string(limit) + " bytes");
    };
    if (parser.content_length() && *parser.content_length() > limit) co_return too_big();
    Request dummy;
    dummy.headers["expect"] = text_of(parser.get()[http::field::expect]);
    co_await send_continue_if_asked(dummy, parser.get().version());
    std::vector<char> buf(kChunk);
    while (!parser.is_done()) {
      auto n = co_await read_body_chunk(parser, buf);
      if (!n) co_return error_response(400, "invalid_argument", "the request body could not be read");
      if (out.size() + *n > limit) co_return too_big();
      out.append(buf.data(), *n);
    }
    co_return std::nullopt;
  }

  // The next piece of the body into `buf`; nullopt on an error.
  awaitable<std::optional<std::size_t>> read_body_chunk(http::request_parser<http::buffer_body>& parser,
                                                        std::vector<char>& buf) {
    parser.get().body().data = buf.data();
    parser.get().body().size = buf.size();
    lowest().expires_after(std::chrono::seconds(sh_.state.options.header_timeout_s));
    beast::error_code ec;
    co_await http::async_read(stream_, buffer_, parser, on_error(ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return std::nullopt;
    co_return buf.size() - parser.get().body().size;
  }

  // A streamed body: the handler runs at once, reading a pipe this copies
  // the body into. True when the whole body was read (the connection can
  // serve another request).
  awaitable<bool> run_with_streamed_body(http::request_parser<http::buffer_body>& parser, const Route& route,
                                         Request& req, Response& res) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      res = error_response(errno_error("pipe"));
      co_return false;
    }
    auto complete = std::make_shared<std::atomic<bool>>(false);
    req.body_fd = p[0];
    req.body_complete = [complete] { return complete->load(); };
    auto ex = co_await asio::this_coro::executor;
    auto done = std::make_shared<Event>(ex);
    sh_.threads++;
    try {
      std::thread([&, done, fd = p[0]] {
        res = route.handler(req);
        ::close(fd);
        Event::notify(done);
        sh_.threads--;
      }).detach();
    } catch (const std::system_error&) {
      sh_.threads--;
      ::close(p[0]);
      ::close(p[1]);
      res = error_response(503, "busy", "the server could not start a thread for the request");
      co_return false;
    }
    co_await send_continue_if_asked(req, parser.get().version());
    asio::posix::stream_descriptor out(ex, p[1]);
    std::vector<char> buf(kChunk);
    bool ok = true;
    while (ok && !parser.is_done()) {
      auto n = co_await read_body_chunk(parser, buf);
      if (!n) {
        ok = false;
        break;
      }
      beast::error_code ec;
      co_await asio::async_write(out, asio::buffer(buf.data(), *n), on_error(ec));
      if (ec) ok = false;  // the handler stopped reading (it answered already)
    }
    if (ok && parser.is_done()) complete->store(true);
    beast::error_code ignored;
    out.close(ignored);
    co_await done->wait();
    co_return ok && parser.is_done();
  }

  // While a handler runs: a client that hangs up is noticed (a peek that
  // reads end of file), so a long command's wait can stop.
  // Calls `on_gone` (on the connection's executor) if the client hangs up
  // before stop_watching().
  void watch_for_hangup(std::function<void()> on_gone) {
    if (buffer_.size() != 0) return;  // a pipelined request is waiting: it is there
    watching_ = true;
    auto self = this->shared_from_this();
    socket().async_wait(asio::socket_base::wait_read, [self, on_gone = std::move(on_gone)](beast::error_code ec) {
      if (ec) return;
      char c;
      ssize_t n = ::recv(self->socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) on_gone();
    });
  }
  void stop_watching() {
    if (!watching_) return;
    watching_ = false;
    beast::error_code ec;
    socket().cancel(ec);
  }

  template <class Message>
  void set_common_headers(Message& m, const Response& res) {
    m.set(http::field::server, std::string("moat/") + moat::version());
    if (!res.content_type.empty()) m.set(http::field::content_type, res.content_type);
    for (const auto& [name, value] : res.headers) m.set(name, value);
  }

  awaitable<bool> respond(const Request& req, const Response& res, bool keep_alive, unsigned version,
                          Clock::time_point started) {
    http::response<http::string_body> m{static_cast<http::status>(res.status), version};
    set_common_headers(m, res);
    m.body() = res.body;
    m.keep_alive(keep_alive);
    m.prepare_payload();
    lowest().expires_after(kWriteTimeout);
    beast::error_code ec;
    co_await http::async_write(stream_, m, on_error(ec));
    log_request(req, res.status, res.body.size(), started);
    co_return !ec && keep_alive;
  }

  // Head, then the producer's bytes as chunks. A client that stops reading
  // holds the producer back (the pipe between them fills); one that leaves
  // ends it (its next write fails).
  awaitable<bool> respond_streamed(const Request& req, const Response& res, bool keep_alive, unsigned version,
                                   Clock::time_point started) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) co_return co_await respond(req, error_response(errno_error("pipe")), false, version, started);
    auto producer = res.stream;
    if (!start_thread(sh_, [producer, fd = p[1]] {
          producer(fd);
          ::close(fd);
        })) {
      ::close(p[0]);
      ::close(p[1]);
      co_return co_await respond(req, error_response(503, "busy", "no thread for the response"), false, version, started);
    }
    http::response<http::empty_body> head{static_cast<http::status>(res.status), version};
    set_common_headers(head, res);
    head.keep_alive(keep_alive);
    head.chunked(true);
    http::response_serializer<http::empty_body> sr{head};
    auto in = std::make_shared<asio::posix::stream_descriptor>(co_await asio::this_coro::executor, p[0]);
    beast::error_code ec;
    lowest().expires_after(kWriteTimeout);
    co_await http::async_write_header(stream_, sr, on_error(ec));
    // A client that hangs up while the producer has nothing to send (a
    // quiet followed log) closes the pipe's read end, which the producer
    // notices (reader_gone) without having to write.
    auto hung_up = std::make_shared<bool>(false);
    if (!ec) watch_for_hangup([in, hung_up] {
      *hung_up = true;
      beast::error_code ignored;
      in->close(ignored);
    });
    std::vector<char> buf(kChunk);
    std::uint64_t sent = 0;
    bool failed = static_cast<bool>(ec);
    while (!failed) {
      beast::error_code rec;
      std::size_t n = co_await in->async_read_some(asio::buffer(buf), on_error(rec));
      if (rec) break;  // the producer is done, or the client left
      lowest().expires_after(kWriteTimeout);
      co_await asio::async_write(stream_, http::make_chunk(asio::buffer(buf.data(), n)), on_error(ec));
      if (ec) failed = true;
      sent += n;
    }
    stop_watching();
    failed = failed || *hung_up;
    beast::error_code ignored;
    in->close(ignored);
    if (!failed) {
      lowest().expires_after(kWriteTimeout);
      co_await asio::async_write(stream_, http::make_chunk_last(), on_error(ec));
      failed = static_cast<bool>(ec);
    }
    log_request(req, res.status, sent, started);
    co_return !failed && keep_alive;
  }

  awaitable<void> run_websocket(http::request<http::buffer_body> upgrade, std::function<void(MessageChannel&)> handler,
                                const Request& req, Clock::time_point started) {
    lowest().expires_never();
    // The WebSocket owns the stream from here; this connection's copy is
    // moved-from and must not be touched again (an ssl_stream's is empty).
    moved_to_websocket_ = true;
    auto ws = std::make_shared<websocket::stream<Stream>>(std::move(stream_));
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.idle_timeout = std::chrono::seconds(60);
    timeouts.keep_alive_pings = true;
    ws->set_option(timeouts);
    ws->read_message_max(kWsMaxMessage);
    ws->set_option(websocket::stream_base::decorator([](websocket::response_type& m) {
      m.set(http::field::server, std::string("moat/") + moat::version());
    }));
    beast::error_code ec;
    co_await ws->async_accept(upgrade, on_error(ec));
    log_request(req, ec ? 400 : 101, 0, started);
    if (ec) co_return;
    auto ex = co_await asio::this_coro::executor;
    auto channel = std::make_shared<WsChannel>(ex);
    auto handler_done = std::make_shared<Event>(ex);
    if (!start_thread(sh_, [handler = std::move(handler), channel, handler_done] {
          handler(*channel);
          channel->close("done");
          Event::notify(handler_done);
        })) {
      co_await ws->async_close(websocket::close_reason(websocket::close_code::try_again_later), on_error(ec));
      co_return;
    }
    asio::co_spawn(ex, read_messages(channel, ws), asio::detached);
    co_await channel->write_loop(ws);
    channel->mark_gone();  // the handler's sends fail from now on
    co_await handler_done->wait();
  }

  void log_request(const Request& req, int status, std::uint64_t bytes, Clock::time_point started) {
    auto& c = sh_.state.counters;
    c.requests++;
    if (status >= 400 && status < 500) c.responses_4xx++;
    if (status >= 500) c.responses_5xx++;
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    // The path only: a query may carry what should not be in a log.
    std::lock_guard lock(sh_.log_mu);
    if (sh_.state.options.log_json) {
      nlohmann::json j = {{"time", static_cast<std::int64_t>(std::time(nullptr))},
                          {"method", req.method},
                          {"path", req.path},
                          {"status", status},
                          {"bytes", bytes},
                          {"ms", static_cast<std::int64_t>(ms * 1000) / 1000.0}};
      std::fprintf(stderr, "%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::fprintf(stderr, "moat serve: %s %s %d %llu bytes %.1f ms\n", req.method.c_str(), req.path.c_str(), status,
                   static_cast<unsigned long long>(bytes), ms);
    }
  }

  Shared& sh_;
  Stream stream_;
  beast::flat_buffer buffer_;
  ConnectionCount count_;
  bool watching_ = false;
  bool moved_to_websocket_ = false;
};

// The connection rides in the coroutine's frame: a coroutine started by
// co_spawn runs later, after the accept loop dropped its pointer.
template <class C>
awaitable<void> serve_connection(std::shared_ptr<C> connection) {
  co_await connection->run();
}
template <class C>
awaitable<void> shed_connection(std::shared_ptr<C> connection) {
  co_await connection->shed();
}

template <class Stream, class Acceptor>
awaitable<void> accept_loop(Shared& sh, Acceptor& acceptor) {
  for (;;) {
    beast::error_code ec;
    auto socket = co_await acceptor.async_accept(on_error(ec));
    if (sh.stopping || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE and the like: wait a little rather than spin.
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(on_error(ec));
      continue;
    }
    auto connection = std::make_shared<Connection<Stream>>(sh, std::move(socket));
    if (sh.state.counters.connections > sh.state.options.max_connections) {
      sh.state.counters.connections_shed++;
      asio::co_spawn(acceptor.get_executor(), shed_connection(connection), asio::detached);
    } else {
      asio::co_spawn(acceptor.get_executor(), serve_connection(connection), asio::detached);
    }
  }
}

// Waits for the requests in flight (at most the grace time), then ends the loop.
awaitable<void> drain_and_stop(Shared& sh) {
  auto deadline = Clock::now() + kShutdownGrace;
  asio::steady_timer t(sh.io);
  while (sh.state.counters.in_flight > 0 && Clock::now() < deadline) {
    t.expires_after(std::chrono::milliseconds(50));
    beast::error_code ec;
    co_await t.async_wait(on_error(ec));
  }
  sh.io.stop();
}

Result<asio::ip::tcp::endpoint> tcp_endpoint(const std::string& text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return make_error("--listen: expected HOST:PORT, not " + text, EINVAL);
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  unsigned long port = std::strtoul(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port > 65535 || colon + 1 == text.size())
    return make_error("--listen: bad port in " + text, EINVAL);
  beast::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return make_error("--listen: " + host + " is not an IP address", EINVAL);
  return asio::ip::tcp::endpoint(address, static_cast<unsigned short>(port));
}

// Binds the unix socket with mode 0600 from the start (umask), after
// making sure no live server holds the path (a stale socket is replaced).
Status bind_unix(asio::local::stream_protocol::acceptor& acceptor, const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return make_error(path + " exists and is not a socket", EEXIST);
    asio::io_context probe_io;
    asio::local::stream_protocol::socket probe(probe_io);
    beast::error_code ec;
    probe.connect(asio::local::stream_protocol::endpoint(path), ec);
    if (!ec) return make_error("another server listens on " + path, EADDRINUSE);
    ::unlink(path.c_str());
  }
  mode_t old = ::umask(0177);
  beast::error_code ec;
  acceptor.open(asio::local::stream_protocol(), ec);
  if (!ec) acceptor.bind(asio::local::stream_protocol::endpoint(path), ec);
  ::umask(old);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error("listen on " + path + ": " + ec.message(), ec.value());
  ::chmod(path.c_str(), 0600);
  return ok_status();
}

// TLS 1.2 and later, the certificate chain and key from PEM files. Loaded
// once: a renewed certificate takes a restart.
Result<ssl::context> tls_context(const std::string& cert, const std::string& key) {
  if (cert.empty() || key.empty()) return make_error("TLS needs both --tls-cert and --tls-key", EINVAL);
  ssl::context context(ssl::context::tls_server);
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  beast::error_code ec;
  context.use_certificate_chain_file(cert, ec);
  if (ec) return make_error("--tls-cert " + cert + ": " + ec.message(), EINVAL);
  context.use_private_key_file(key, ssl::context::pem, ec);
  if (ec) return make_error("--tls-key " + key + ": " + ec.message(), EINVAL);
  if (::SSL_CTX_check_private_key(context.native_handle()) != 1)
    return make_error("--tls-key " + key + " does not match the certificate in " + cert, EINVAL);
  return context;
}

}  // namespace

Status run_http_server(ServerState& state, const Listener& listener, const std::function<void()>& on_ready) {
  Shared sh(state);
  sh.token = listener.token;
  sh.tcp = listener.unix_path.empty();
  asio::local::stream_protocol::acceptor unix_acceptor(sh.io);
  asio::ip::tcp::acceptor tcp_acceptor(sh.io);
  if (!sh.tcp) {
    MOAT_TRY(bind_unix(unix_acceptor, listener.unix_path));
    asio::co_spawn(sh.io, accept_loop<beast::basic_stream<asio::local::stream_protocol>>(sh, unix_acceptor),
                   asio::detached);
  } else {
    if (sh.token.empty()) return make_error("a TCP listener needs a token", EINVAL);
    if (!listener.tls_cert.empty() || !listener.tls_key.empty()) {
      MOAT_ASSIGN_OR_RETURN(auto context, tls_context(listener.tls_cert, listener.tls_key));
      sh.tls.emplace(std::move(context));
    }
    MOAT_ASSIGN_OR_RETURN(auto endpoint, tcp_endpoint(listener.tcp_address));
    beast::error_code ec;
    tcp_acceptor.open(endpoint.protocol(), ec);
    if (!ec) tcp_acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) tcp_acceptor.bind(endpoint, ec);
    if (!ec) tcp_acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return make_error("listen on " + listener.tcp_address + ": " + ec.message(), ec.value());
    if (sh.tls) {
      asio::co_spawn(sh.io, accept_loop<beast::ssl_stream<beast::tcp_stream>>(sh, tcp_acceptor), asio::detached);
    } else {
      asio::co_spawn(sh.io, accept_loop<beast::tcp_stream>(sh, tcp_acceptor), asio::detached);
    }
  }

  asio::signal_set signals(sh.io, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code ec, int) {
    if (ec) return;
    sh.stopping = true;
    beast::error_code ignored;
    unix_acceptor.close(ignored);
    tcp_acceptor.close(ignored);
    asio::co_spawn(sh.io, drain_and_stop(sh), asio::detached);
  });
  if (on_ready) on_ready();
  sh.io.run();
  if (!listener.unix_path.empty()) ::unlink(listener.unix_path.c_str());
  return ok_status();
}

}  // namespace moat::server
