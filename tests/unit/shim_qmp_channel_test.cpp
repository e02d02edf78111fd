#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "shim/qmp_channel.h"

namespace moat::shim {
namespace {

// The channel and the QEMU side of its socket.
struct Fixture {
  QmpChannel qmp;
  int qemu = -1;
  Fixture() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    qmp = QmpChannel(UniqueFd(fds[0]));
    qemu = fds[1];
  }
  ~Fixture() { ::close(qemu); }
  // What the shim sent, after letting it write.
  std::string sent() {
    qmp.on_writable();
    char buf[65536];
    ssize_t n = ::recv(qemu, buf, sizeof(buf), MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }
  void qemu_says(const std::string& text) {
    ASSERT_EQ(::send(qemu, text.data(), text.size(), 0), static_cast<ssize_t>(text.size()));
    qmp.on_readable();
  }
};

TEST(ShimQmpChannel, NegotiatesThenMatchesAnswersToCommandsInOrder) {
  Fixture f;
  std::vector<std::string> got;
  f.qmp.execute("stop", [&](Result<proto::Json> r) { got.push_back(r ? "stop:" + r->dump() : "stop-failed"); });
  f.qmp.execute("cont", [&](Result<proto::Json> r) { got.push_back(r ? "cont:" + r->dump() : r.error().message); });
  EXPECT_EQ(f.sent(), "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"stop\"}\n{\"execute\":\"cont\"}\n");
  f.qemu_says("{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n{\"return\": {}}\r\n");
  EXPECT_TRUE(got.empty()) << "the capabilities answer is the channel's own";
  // An event in between, and an answer split across reads.
  f.qemu_says("{\"timestamp\": {}, \"event\": \"STOP\"}\r\n{\"return\"");
  EXPECT_TRUE(got.empty());
  f.qemu_says(": {}}\r\n{\"error\": {\"class\": \"GenericError\", \"desc\": \"no way\"}}\r\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "stop:{}");
  EXPECT_EQ(got[1], "QEMU's monitor: no way");
  EXPECT_FALSE(f.qmp.broken());
}

TEST(ShimQmpChannel, ArgumentsAndADescriptorGoWithTheirCommandAndEventsReachTheHandler) {
  Fixture f;
  std::vector<std::string> events;
  f.qmp.on_event([&](const std::string& name, const proto::Json& data) { events.push_back(name + " " + data.dump()); });
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  bool answered = false;
  f.qmp.execute("getfd", {{"fdname", "moat-state"}}, [&](Result<proto::Json> r) { answered = bool(r); },
                pipe_fds[1]);
  ::close(pipe_fds[1]);  // the channel keeps its own duplicate until it is sent
  f.qmp.on_writable();
  // The descriptor arrives with the command's bytes, as QEMU's getfd takes it.
  char buf[4096];
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct iovec iov {buf, sizeof(buf)};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  std::string text;
  int passed = -1;
  while (text.find("getfd") == std::string::npos || text.back() != '\n') {
    ssize_t n = ::recvmsg(f.qemu, &msg, MSG_DONTWAIT);
    ASSERT_GT(n, 0);
    text.append(buf, static_cast<std::size_t>(n));
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(&passed, CMSG_DATA(c), sizeof(int));
    msg.msg_controllen = sizeof(control);
  }
  EXPECT_EQ(text, "{\"execute\":\"qmp_capabilities\"}\n"
                  "{\"arguments\":{\"fdname\":\"moat-state\"},\"execute\":\"getfd\"}\n");
  ASSERT_GE(passed, 0) << "no descriptor came with the command";
  // It is the pipe's write end: what is written there comes out of the pipe.
  ASSERT_EQ(::write(passed, "x", 1), 1);
  char got = 0;
  ASSERT_EQ(::read(pipe_fds[0], &got, 1), 1);
  EXPECT_EQ(got, 'x');
  ::close(passed);
  ::close(pipe_fds[0]);
  f.qemu_says("{\"return\": {}}\n{\"event\": \"MIGRATION\", \"data\": {\"status\": \"completed\"}}\n"
              "{\"event\": \"STOP\"}\n{\"return\": {}}\n");
  EXPECT_TRUE(answered);
  EXPECT_EQ(events, (std::vector<std::string>{"MIGRATION {\"status\":\"completed\"}", "STOP null"}));
}

TEST(ShimQmpChannel, ABadLineBreaksTheChannelAndFailsEveryWaitingCommand) {
  for (std::string bad : {std::string("not json\n"), std::string("[1,2]\n"), std::string("{\"what\": 1}\n"),
                          std::string(kMaxQmpLine + 10, 'x')}) {
    Fixture f;
    int failed = 0;
    f.qmp.execute("stop", [&](Result<proto::Json> r) { failed += !r; });
    f.qmp.execute("cont", [&](Result<proto::Json> r) { failed += !r; });
    f.qemu_says("{\"return\": {}}\n");  // capabilities
    f.qemu_says(bad);
    EXPECT_TRUE(f.qmp.broken()) << bad.substr(0, 20);
    EXPECT_EQ(failed, 2) << bad.substr(0, 20);
    // Later commands fail at once.
    bool later_failed = false;
    f.qmp.execute("stop", [&](Result<proto::Json> r) { later_failed = !r; });
    EXPECT_TRUE(later_failed);
  }
}

TEST(ShimQmpChannel, AnAnswerNobodyAskedForOrQemuLeavingBreaksIt) {
  {
    Fixture f;
    f.qemu_says("{\"return\": {}}\n{\"return\": {}}\n");  // capabilities, then one too many
    EXPECT_TRUE(f.qmp.broken());
  }
  {
    Fixture f;
    std::string why;
    f.qmp.execute("stop", [&](Result<proto::Json> r) { why = r ? "" : r.error().message; });
    ::shutdown(f.qemu, SHUT_WR);
    f.qmp.on_readable();
    EXPECT_TRUE(f.qmp.broken());
    EXPECT_EQ(why, "QEMU's monitor: QEMU closed its monitor");
  }
}

}  // namespace
}  // namespace moat::shim
