#include "sandbox/agent_connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "proto/data_frame.h"

namespace moat::sandbox {

Result<AgentConnection> AgentConnection::connect(const std::string& socket_path) {
  AgentConnection c;
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) return make_error("socket path too long: " + socket_path);
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path.c_str());
  c.fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!c.fd_) return errno_error("socket");
  if (::connect(c.fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return errno_error("connect " + socket_path);
  proto::Json hello = proto::Json::object();
  hello["version"] = proto::kProtocolVersion;
  MOAT_TRY(c.send(proto::make_message(proto::kControlStream, proto::msg::kHello, hello)));
  MOAT_ASSIGN_OR_RETURN(auto reply, c.receive(30000));
  if (!reply) return make_error("the sandbox did not answer the handshake");
  if (reply->type == proto::msg::kError)
    return make_error("handshake refused: " + proto::parse_error(reply->payload, "error", "?").message);
  if (reply->type != proto::msg::kHello) return make_error("unexpected handshake reply \"" + reply->type + "\"");
  auto agent = proto::get_string(reply->payload, "agent", 256);  // informational only
  c.agent_version_ = agent ? *agent : "";
  return c;
}

// What a caller of a handle whose sandbox is gone should read: ENOTCONN
// (ErrorKind::kNotRunning), not the socket's EBADF or EPIPE.
namespace {
Error not_connected(const char* what) { return make_error(std::string(what), ENOTCONN); }
}  // namespace

Status AgentConnection::send(const proto::Message& m) {
  out_.clear();
  proto::encode_message(m, out_);
  return send_buffered();
}

Status AgentConnection::send_data(std::uint32_t stream, std::string_view type, std::string_view bytes) {
  out_.clear();
  proto::append_data_frame(out_, stream, type, bytes);
  return send_buffered();
}

Status AgentConnection::send_buffered() {
  if (!fd_) return not_connected("the connection to the sandbox is closed (it was stopped through this handle)");
  std::size_t off = 0;
  while (off < out_.size()) {
    ssize_t n = ::send(fd_.get(), out_.data() + off, out_.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
      return not_connected("the sandbox closed the connection (it stopped)");
    if (n <= 0) return errno_error("send to sandbox");
    off += static_cast<std::size_t>(n);
  }
  return ok_status();
}

Status AgentConnection::pump() {
  char buf[65536];
  while (true) {
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return ok_status();
    if (n < 0 && errno == ECONNRESET) return not_connected("the sandbox closed the connection (it stopped)");
    if (n < 0) return errno_error("receive from sandbox");
    if (n == 0) return not_connected("the sandbox closed the connection (it stopped)");
    decoder_.feed(buf, static_cast<std::size_t>(n));
    if (n < static_cast<ssize_t>(sizeof(buf))) return ok_status();
  }
}

Result<std::optional<proto::Message>> AgentConnection::buffered() {
  proto::Frame f;
  MOAT_ASSIGN_OR_RETURN(bool got, decoder_.next(f));
  if (!got) return std::optional<proto::Message>();
  MOAT_ASSIGN_OR_RETURN(auto m, proto::decode_message(f));
  return std::optional<proto::Message>(std::move(m));
}

Result<std::optional<proto::Message>> AgentConnection::receive(int timeout_ms) {
  if (!fd_) return not_connected("the connection to the sandbox is closed (it was stopped through this handle)");
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto m, buffered());
    if (m) return m;
    pollfd p{fd_.get(), POLLIN, 0};
    int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("poll");
    if (n == 0) return std::optional<proto::Message>();
    MOAT_TRY(pump());
  }
}

}  // namespace moat::sandbox
