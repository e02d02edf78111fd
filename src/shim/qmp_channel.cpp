#include "shim/qmp_channel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proto/text.h"
#include "util/fd_passing.h"

namespace moat::shim {
namespace {

Error qmp_error(const std::string& what) { return make_error("QEMU's monitor: " + what, EIO); }

}  // namespace

QmpChannel::QmpChannel(UniqueFd fd) : fd_(std::move(fd)) {
  int flags = ::fcntl(fd_.get(), F_GETFL);
  ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK);
  // Capabilities negotiation comes first; QEMU reads it after its greeting.
  execute("qmp_capabilities", [](Result<proto::Json>) {});
}

void QmpChannel::execute(const std::string& command, Done done) {
  execute(command, proto::Json(), std::move(done));
}

void QmpChannel::execute(const std::string& command, proto::Json arguments, Done done, int fd) {
  if (broken()) return done(qmp_error(broken_reason_));
  if (waiting_.size() >= kMaxQmpPending) return done(qmp_error("too many commands waiting for QEMU"));
  proto::Json cmd = {{"execute", command}};
  if (!arguments.is_null()) cmd["arguments"] = std::move(arguments);
  Outgoing o{cmd.dump() + "\n", UniqueFd()};
  if (fd >= 0) {
    o.fd.reset(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
    if (!o.fd) return done(qmp_error("cannot hand QEMU a descriptor: " + std::string(std::strerror(errno))));
  }
  out_.push_back(std::move(o));
  waiting_.push_back(std::move(done));
}

// Sends what it can of the oldest command; false when the socket is full or
// the channel broke. A descriptor rides on the command's first byte, once
// (util/fd_passing.h), the rest goes as plain bytes.
bool QmpChannel::send_front() {
  Outgoing& o = out_.front();
  ssize_t n;
  if (o.fd) {
    Status sent = send_with_fds(fd_.get(), o.text.data(), 1, {o.fd.get()});
    if (!sent && sent.error().code == EAGAIN) return false;
    if (!sent) {
      close("the connection to QEMU failed");
      return false;
    }
    o.fd.reset();
    n = 1;
  } else {
    n = ::send(fd_.get(), o.text.data(), o.text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  if (n < 0 && errno == EINTR) return true;
  if (n < 0 && errno == EAGAIN) return false;
  if (n <= 0) {
    close("the connection to QEMU failed");
    return false;
  }
  o.text.erase(0, static_cast<std::size_t>(n));
  if (o.text.empty()) out_.pop_front();
  return true;
}

void QmpChannel::on_writable() {
  while (!out_.empty() && !broken() && send_front()) {
  }
}

void QmpChannel::on_readable() {
  char buf[16 * 1024];
  while (!broken()) {
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) return close("QEMU closed its monitor");
    in_.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; !broken() && (nl = in_.find('\n', start)) != std::string::npos; start = nl + 1)
      handle_line(in_.substr(start, nl - start));
    in_.erase(0, start);
    if (in_.size() > kMaxQmpLine) return close("a line from QEMU longer than " + std::to_string(kMaxQmpLine) + " bytes");
  }
}

void QmpChannel::handle_line(const std::string& line) {
  if (line.size() > kMaxQmpLine) return close("a line from QEMU longer than " + std::to_string(kMaxQmpLine) + " bytes");
  if (line.find_first_not_of(" \t\r") == std::string::npos) return;
  proto::Json msg = proto::Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (msg.is_discarded() || !msg.is_object()) return close("QEMU sent something that is not a JSON object");
  if (msg.contains("QMP")) return;  // the greeting
  if (msg.contains("event")) {
    if (on_event_ && msg["event"].is_string())
      on_event_(msg["event"].get<std::string>(), msg.contains("data") ? msg["data"] : proto::Json());
    return;
  }
  bool answer = msg.contains("return") || msg.contains("error");
  if (!answer) return close("QEMU sent a message of no known kind");
  if (waiting_.empty()) return close("QEMU answered a command nobody sent");
  Done done = std::move(waiting_.front());
  waiting_.pop_front();
  if (msg.contains("return")) return done(msg["return"]);
  std::string desc = "failed";
  if (const auto& e = msg["error"]; e.is_object() && e.contains("desc") && e["desc"].is_string())
    desc = proto::lossy_utf8(e["desc"].get<std::string>().substr(0, 512));
  done(qmp_error(desc));
}

void QmpChannel::close(const std::string& why) {
  if (broken()) return;
  broken_reason_ = why.empty() ? "closed" : why;
  out_.clear();
  fail_all(broken_reason_);
}

void QmpChannel::fail_all(const std::string& why) {
  // Callbacks may queue more commands; those fail at once (the channel is broken).
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& done : waiting) done(qmp_error(why));
}

}  // namespace moat::shim
