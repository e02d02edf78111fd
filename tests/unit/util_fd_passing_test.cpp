#include "util/fd_passing.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "tests/unit/send_with_fds.h"

namespace moat::fs {
namespace {

// Sends one byte with `fds` attached, as fusermount3 and QEMU do.
void send_fds(int sock, const std::vector<int>& fds) { ASSERT_TRUE(test::send_with_fds(sock, {'x'}, fds)); }

struct Pair {
  UniqueFd a, b;
  Pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
};

TEST(FdPassing, ReceivesTheBytesAndOwnsTheDescriptors) {
  Pair p;
  send_fds(p.a.get(), {0, 1});
  char byte = 0;
  std::vector<UniqueFd> fds;
  Received r = receive_with_fds(p.b.get(), &byte, 1, 4, fds);
  EXPECT_EQ(r.bytes, 1);
  EXPECT_EQ(byte, 'x');
  EXPECT_FALSE(r.truncated);
  ASSERT_EQ(fds.size(), 2u);
  EXPECT_GT(fds[0].get(), 2);
  EXPECT_EQ(::fcntl(fds[0].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST(FdPassing, MoreDescriptorsThanAskedForAreReportedAsTruncated) {
  Pair p;
  send_fds(p.a.get(), {0, 1, 2});
  char byte = 0;
  std::vector<UniqueFd> fds;
  Received r = receive_with_fds(p.b.get(), &byte, 1, 1, fds);
  EXPECT_EQ(r.bytes, 1);
  EXPECT_TRUE(r.truncated);
  EXPECT_LT(fds.size(), 3u);  // what did arrive is owned, and closed with fds
}

TEST(FdPassing, EndOfStreamAndErrors) {
  Pair p;
  p.a.reset();
  char byte = 0;
  std::vector<UniqueFd> fds;
  EXPECT_EQ(receive_with_fds(p.b.get(), &byte, 1, 1, fds).bytes, 0);
  Received r = receive_with_fds(-1, &byte, 1, 1, fds);
  EXPECT_LT(r.bytes, 0);
  EXPECT_EQ(r.error, EBADF);
  EXPECT_TRUE(fds.empty());
}

}  // namespace
}  // namespace moat::fs
