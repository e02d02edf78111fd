#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

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
