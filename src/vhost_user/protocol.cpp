#include "vhost_user/protocol.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

#include "util/fd_passing.h"

namespace moat::vhost_user {

std::string request_name(std::uint32_t request) {
  switch (request) {
    case kGetFeatures: return "GET_FEATURES";
    case kSetFeatures: return "SET_FEATURES";
    case kSetOwner: return "SET_OWNER";
    case kResetOwner: return "RESET_OWNER";
    case kSetMemTable: return "SET_MEM_TABLE";
    case kSetLogBase: return "SET_LOG_BASE";
    case kSetLogFd: return "SET_LOG_FD";
    case kSetVringNum: return "SET_VRING_NUM";
    case kSetVringAddr: return "SET_VRING_ADDR";
    case kSetVringBase: return "SET_VRING_BASE";
    case kGetVringBase: return "GET_VRING_BASE";
    case kSetVringKick: return "SET_VRING_KICK";
    case kSetVringCall: return "SET_VRING_CALL";
    case kSetVringErr: return "SET_VRING_ERR";
    case kGetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case kSetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case kGetQueueNum: return "GET_QUEUE_NUM";
    case kSetVringEnable: return "SET_VRING_ENABLE";
    case kSetBackendReqFd: return "SET_BACKEND_REQ_FD";
    case kGetConfig: return "GET_CONFIG";
    case kSetConfig: return "SET_CONFIG";
    case kGetMaxMemSlots: return "GET_MAX_MEM_SLOTS";
    case kAddMemReg: return "ADD_MEM_REG";
    case kRemMemReg: return "REM_MEM_REG";
    default: return "request " + std::to_string(request);
  }
}

namespace {

// Reads exactly `len` bytes (no fds expected any more). 0 bytes at the very
// start of a header is a clean end of stream, reported as false.
Result<bool> read_full(int fd, std::uint8_t* buf, std::size_t len, bool eof_ok) {
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::recv(fd, buf + got, len - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("vhost-user receive");
    }
    if (n == 0) {
      if (got == 0 && eof_ok) return false;
      return make_error("vhost-user receive: connection closed inside a message", EPROTO);
    }
    got += static_cast<std::size_t>(n);
  }
  return true;
}

// The fds came with the message and are already owned; too many is an error.
Status check_fd_count(const Received& r, const std::vector<UniqueFd>& fds) {
  if (r.truncated)
    return make_error("vhost-user receive: more than " + std::to_string(kMaxFds) + " fds", EPROTO);
  if (fds.size() > kMaxFds)
    return make_error("vhost-user receive: too many fds", EPROTO);
  return ok_status();
}

}  // namespace

Result<bool> receive(int fd, Message& msg) {
  msg.fds.clear();
  msg.header = {};
  Received r = receive_with_fds(fd, &msg.header, sizeof msg.header, kMaxFds, msg.fds);
  ssize_t n = r.bytes;
  if (n < 0) {
    // The frontend going away mid-stream ends the connection; not our error.
    if (r.error == ECONNRESET) return false;
    return errno_error("vhost-user receive", r.error);
  }
  if (n == 0) return false;
  MOAT_TRY(check_fd_count(r, msg.fds));
  auto* hdr = reinterpret_cast<std::uint8_t*>(&msg.header);
  if (static_cast<std::size_t>(n) < sizeof msg.header) {
    MOAT_ASSIGN_OR_RETURN(bool more, read_full(fd, hdr + n, sizeof msg.header - n, false));
    (void)more;
  }
  if ((msg.header.flags & kVersionMask) != kVersion)
    return make_error("vhost-user: " + request_name(msg.header.request) + " with version " +
                          std::to_string(msg.header.flags & kVersionMask),
                      EPROTO);
  if (msg.header.size > kMaxPayload)
    return make_error("vhost-user: " + request_name(msg.header.request) + " payload of " +
                          std::to_string(msg.header.size) + " bytes",
                      EPROTO);
  if (msg.header.size > 0) {
    MOAT_ASSIGN_OR_RETURN(bool full, read_full(fd, msg.payload.data(), msg.header.size, false));
    (void)full;
  }
  return true;
}

Status send_reply(int fd, const Header& request, std::span<const std::uint8_t> payload) {
  Header h{request.request, kVersion | kFlagReply, static_cast<std::uint32_t>(payload.size())};
  iovec iov[2] = {{&h, sizeof h}, {const_cast<std::uint8_t*>(payload.data()), payload.size()}};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = payload.empty() ? 1 : 2;
  std::size_t total = sizeof h + payload.size();
  for (;;) {
    ssize_t n = ::sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("vhost-user reply to " + request_name(request.request));
    // Replies are at most a few hundred bytes: a short write on a unix
    // stream socket would mean a broken peer.
    if (static_cast<std::size_t>(n) != total)
      return make_error("vhost-user reply to " + request_name(request.request) + ": short write",
                        EIO);
    return ok_status();
  }
}

Status send_u64(int fd, const Header& request, std::uint64_t value) {
  std::uint8_t b[8];
  std::memcpy(b, &value, sizeof b);
  return send_reply(fd, request, b);
}

}  // namespace moat::vhost_user
