#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "agent/outbox.h"
#include "proto/file_ops.h"
#include "proto/frame.h"
#include "proto/message.h"

namespace moat::agent {
namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    ::close(r);
    ::close(w);
  }
};

std::string drain(int fd) {
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

std::vector<proto::Message> decode_all(const std::string& bytes) {
  proto::FrameDecoder d;
  d.feed(bytes);
  std::vector<proto::Message> out;
  proto::Frame f;
  while (true) {
    auto got = d.next(f);
    EXPECT_TRUE(got);
    if (!got || !*got) break;
    auto m = proto::decode_message(f);
    EXPECT_TRUE(m) << (m ? "" : m.error().message);
    if (m) out.push_back(*m);
  }
  EXPECT_EQ(d.buffered(), 0u);
  return out;
}

// Queues a data frame of `bytes` through the in-place path.
void queue(Outbox& box, std::uint32_t stream, std::string_view type, const std::string& bytes) {
  auto n = box.fill_data(stream, type, bytes.size(), [&](char* dst, std::size_t max) -> Result<std::size_t> {
    EXPECT_EQ(max, bytes.size());
    std::memcpy(dst, bytes.data(), bytes.size());
    return bytes.size();
  });
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, bytes.size());
}

std::string bytes_of(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 13 + seed);
  return s;
}

TEST(AgentOutbox, FramesComeOutInOrderAcrossPartialWrites) {
  Outbox box;
  Pipe src, dst;
  // A small pipe on the channel's side, so every flush writes part of a frame.
  ASSERT_GT(::fcntl(dst.w, F_SETPIPE_SZ, 4096), 0);
  std::string piped = bytes_of(50000, 1);
  ASSERT_EQ(::write(src.w, piped.data(), piped.size()), static_cast<ssize_t>(piped.size()));

  box.send(proto::make_message(3, proto::msg::kStarted, proto::Json{{"pid", 42}}));
  for (int i = 0; i < 40; ++i) queue(box, 3, proto::msg::kStdout, bytes_of(65536, i));
  EXPECT_EQ(box.read_data(src.r, 4, proto::msg::kData, 65536), 50000);
  EXPECT_EQ(box.read_data(src.r, 4, proto::msg::kData, 65536), -1);  // empty pipe: EAGAIN, nothing queued
  EXPECT_EQ(errno, EAGAIN);
  ::close(src.w);
  src.w = ::open("/dev/null", O_WRONLY);
  EXPECT_EQ(box.read_data(src.r, 4, proto::msg::kData, 65536), 0);  // end of file: nothing queued
  queue(box, 5, proto::msg::kStderr, "e");

  std::string channel;
  while (!box.empty()) {
    ASSERT_TRUE(box.flush(dst.w));
    channel += drain(dst.r);
  }
  auto msgs = decode_all(channel);
  ASSERT_EQ(msgs.size(), 1u + 40u + 1u + 1u);
  EXPECT_EQ(msgs[0].type, proto::msg::kStarted);
  EXPECT_EQ(msgs[0].payload["pid"], 42);
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(msgs[1 + i].stream, 3u);
    EXPECT_EQ(msgs[1 + i].type, proto::msg::kStdout);
    EXPECT_EQ(proto::data_of(msgs[1 + i]).value(), bytes_of(65536, i)) << i;
  }
  EXPECT_EQ(msgs[41].stream, 4u);
  EXPECT_EQ(proto::data_of(msgs[41]).value(), piped);
  EXPECT_EQ(msgs[42].type, proto::msg::kStderr);
  EXPECT_EQ(proto::data_of(msgs[42]).value(), "e");
}

TEST(AgentOutbox, FillerThatFailsOrGivesNothingQueuesNothing) {
  Outbox box;
  auto failed = box.fill_data(1, proto::msg::kData, 100, [](char*, std::size_t) -> Result<std::size_t> {
    return make_error("disk on fire", EIO);
  });
  EXPECT_FALSE(failed);
  auto none = box.fill_data(1, proto::msg::kData, 100, [](char*, std::size_t) -> Result<std::size_t> { return 0; });
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0u);
  EXPECT_TRUE(box.empty());
  auto some = box.fill_data(1, proto::msg::kData, 100, [](char* dst, std::size_t max) -> Result<std::size_t> {
    EXPECT_EQ(max, 100u);
    std::memcpy(dst, "xyz", 3);
    return 3;
  });
  ASSERT_TRUE(some);
  EXPECT_EQ(*some, 3u);
  Pipe p;
  ASSERT_TRUE(box.flush(p.w));
  auto msgs = decode_all(drain(p.r));
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(proto::data_of(msgs[0]).value(), "xyz");
}

TEST(AgentOutbox, FlushReportsAChannelThatFailed) {
  Outbox box;
  queue(box, 1, proto::msg::kStdout, "abc");
  Pipe p;
  ::close(p.r);
  p.r = ::open("/dev/null", O_RDONLY);
  ::signal(SIGPIPE, SIG_IGN);
  EXPECT_FALSE(box.flush(p.w));  // EPIPE
  EXPECT_FALSE(box.empty());     // the bytes stay queued
}

}  // namespace
}  // namespace moat::agent
