#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "shim/event_loop.h"
#include "util/unique_fd.h"

namespace moat::shim {
namespace {

using Events = EventLoop::Events;

struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};

Pipe make_pipe() {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void put_byte(const Pipe& p) { ASSERT_EQ(::write(p.write_end.get(), "x", 1), 1); }

EventLoop make_loop() {
  auto loop = EventLoop::create();
  EXPECT_TRUE(loop.ok());
  return std::move(*loop);
}

TEST(ShimEventLoop, HandlerGetsTheReadyEvents) {
  EventLoop loop = make_loop();
  Pipe p = make_pipe();
  std::vector<Events> seen;
  ASSERT_TRUE(loop.add(p.read_end.get(), EventLoop::kReadable, [&](Events ev) { seen.push_back(ev); }).ok());
  put_byte(p);
  auto ran = loop.run_once(1000);
  ASSERT_TRUE(ran.ok());
  EXPECT_EQ(*ran, 1);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], EventLoop::kReadable);
}

TEST(ShimEventLoop, LevelTriggeredUntilDrained) {
  EventLoop loop = make_loop();
  Pipe p = make_pipe();
  int calls = 0;
  ASSERT_TRUE(loop.add(p.read_end.get(), EventLoop::kReadable, [&](Events) { ++calls; }).ok());
  put_byte(p);
  ASSERT_EQ(*loop.run_once(0), 1);
  ASSERT_EQ(*loop.run_once(0), 1);
  EXPECT_EQ(calls, 2);
  char c;
  ASSERT_EQ(::read(p.read_end.get(), &c, 1), 1);
  EXPECT_EQ(*loop.run_once(0), 0);
  EXPECT_EQ(calls, 2);
}

TEST(ShimEventLoop, HangupIsReportedWithoutBeingAskedFor) {
  EventLoop loop = make_loop();
  Pipe p = make_pipe();
  std::vector<Events> seen;
  ASSERT_TRUE(loop.add(p.read_end.get(), 0, [&](Events ev) { seen.push_back(ev); }).ok());
  p.write_end.reset();
  ASSERT_EQ(*loop.run_once(1000), 1);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], EventLoop::kHangup);
}

TEST(ShimEventLoop, TimeoutReturnsZeroAfterWaiting) {
  EventLoop loop = make_loop();
  Pipe p = make_pipe();
  ASSERT_TRUE(loop.add(p.read_end.get(), EventLoop::kReadable, [&](Events) { FAIL() << "nothing was ready"; }).ok());
  auto start = std::chrono::steady_clock::now();
  auto ran = loop.run_once(50);
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(ran.ok());
  EXPECT_EQ(*ran, 0);
  EXPECT_GE(waited, std::chrono::milliseconds(45));
}

TEST(ShimEventLoop, ModifyChangesInterest) {
  EventLoop loop = make_loop();
  Pipe p = make_pipe();
  std::vector<Events> seen;
  // A pipe's write end is writable at once; with no interest only errors
  // would be reported.
  ASSERT_TRUE(loop.add(p.write_end.get(), 0, [&](Events ev) { seen.push_back(ev); }).ok());
  EXPECT_EQ(*loop.run_once(0), 0);
  ASSERT_TRUE(loop.modify(p.write_end.get(), EventLoop::kWritable).ok());
  EXPECT_EQ(*loop.run_once(0), 1);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], EventLoop::kWritable);
  ASSERT_TRUE(loop.modify(p.write_end.get(), 0).ok());
  EXPECT_EQ(*loop.run_once(0), 0);
  EXPECT_EQ(seen.size(), 1u);
}

TEST(ShimEventLoop, ModifyOrAddTwiceIsAnError) {
  EventLoop loop = make_loop();
  Pipe p = make_pipe();
  EXPECT_FALSE(loop.modify(p.read_end.get(), EventLoop::kReadable).ok());
  ASSERT_TRUE(loop.add(p.read_end.get(), EventLoop::kReadable, [](Events) {}).ok());
  EXPECT_FALSE(loop.add(p.read_end.get(), EventLoop::kReadable, [](Events) {}).ok());
  EXPECT_FALSE(loop.add(-1, EventLoop::kReadable, [](Events) {}).ok());
  EXPECT_EQ(loop.size(), 1u);
}

TEST(ShimEventLoop, HandlerMayRemoveItself) {
  EventLoop loop = make_loop();
  Pipe p = make_pipe();
  int calls = 0;
  int fd = p.read_end.get();
  ASSERT_TRUE(loop.add(fd, EventLoop::kReadable, [&, fd](Events) {
                    ++calls;
                    loop.remove(fd);
                  }).ok());
  put_byte(p);
  EXPECT_EQ(*loop.run_once(0), 1);
  EXPECT_FALSE(loop.watches(fd));
  EXPECT_EQ(*loop.run_once(0), 0);
  EXPECT_EQ(calls, 1);
}

TEST(ShimEventLoop, RemovedDuringDispatchIsNotCalled) {
  EventLoop loop = make_loop();
  Pipe a = make_pipe();
  Pipe b = make_pipe();
  int a_calls = 0;
  int b_calls = 0;
  // Both are ready in the same wake-up; whichever runs first removes the
  // other, which must then not run.
  ASSERT_TRUE(loop.add(a.read_end.get(), EventLoop::kReadable, [&](Events) {
                    ++a_calls;
                    loop.remove(b.read_end.get());
                  }).ok());
  ASSERT_TRUE(loop.add(b.read_end.get(), EventLoop::kReadable, [&](Events) {
                    ++b_calls;
                    loop.remove(a.read_end.get());
                  }).ok());
  put_byte(a);
  put_byte(b);
  EXPECT_EQ(*loop.run_once(0), 1);
  EXPECT_EQ(a_calls + b_calls, 1);
  EXPECT_EQ(loop.size(), 1u);
}

TEST(ShimEventLoop, ReaddedDescriptorGetsOnlyLaterEvents) {
  EventLoop loop = make_loop();
  Pipe first = make_pipe();
  Pipe other = make_pipe();
  int old_calls = 0;
  int new_calls = 0;
  int fd = first.read_end.get();
  // The lower priority runs first: it replaces the handler of `fd`, whose
  // event already collected must reach neither the old nor the new one.
  ASSERT_TRUE(loop.add(
                      other.read_end.get(), EventLoop::kReadable,
                      [&](Events) {
                        loop.remove(fd);
                        ASSERT_TRUE(loop.add(fd, EventLoop::kReadable, [&](Events) { ++new_calls; }).ok());
                        char c;
                        ASSERT_EQ(::read(other.read_end.get(), &c, 1), 1);
                      },
                      /*priority=*/0)
                  .ok());
  ASSERT_TRUE(loop.add(fd, EventLoop::kReadable, [&](Events) { ++old_calls; }, /*priority=*/1).ok());
  put_byte(first);
  put_byte(other);
  EXPECT_EQ(*loop.run_once(0), 1);
  EXPECT_EQ(old_calls, 0);
  EXPECT_EQ(new_calls, 0);
  EXPECT_EQ(*loop.run_once(0), 1);
  EXPECT_EQ(new_calls, 1);
}

TEST(ShimEventLoop, PriorityOrdersOneWakeUp) {
  EventLoop loop = make_loop();
  Pipe low = make_pipe();
  Pipe high = make_pipe();
  std::vector<int> order;
  ASSERT_TRUE(loop.add(low.read_end.get(), EventLoop::kReadable, [&](Events) { order.push_back(2); }, 2).ok());
  ASSERT_TRUE(loop.add(high.read_end.get(), EventLoop::kReadable, [&](Events) { order.push_back(1); }, 1).ok());
  put_byte(low);
  put_byte(high);
  EXPECT_EQ(*loop.run_once(0), 2);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(ShimEventLoop, StopDispatchLeavesTheRestForTheNextWakeUp) {
  EventLoop loop = make_loop();
  Pipe first = make_pipe();
  Pipe second = make_pipe();
  int second_calls = 0;
  ASSERT_TRUE(loop.add(
                      first.read_end.get(), EventLoop::kReadable,
                      [&](Events) {
                        char c;
                        ASSERT_EQ(::read(first.read_end.get(), &c, 1), 1);
                        loop.stop_dispatch();
                      },
                      0)
                  .ok());
  ASSERT_TRUE(loop.add(second.read_end.get(), EventLoop::kReadable, [&](Events) { ++second_calls; }, 1).ok());
  put_byte(first);
  put_byte(second);
  EXPECT_EQ(*loop.run_once(0), 1);
  EXPECT_EQ(second_calls, 0);
  EXPECT_EQ(*loop.run_once(0), 1);
  EXPECT_EQ(second_calls, 1);
}

TEST(ShimEventLoop, RemoveOfAnUnknownDescriptorIsIgnored) {
  EventLoop loop = make_loop();
  loop.remove(12345);
  loop.remove(-1);
  EXPECT_EQ(loop.size(), 0u);
}

}  // namespace
}  // namespace moat::shim
