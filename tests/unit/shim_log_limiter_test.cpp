#include <gtest/gtest.h>

#include "shim/log_limiter.h"
#include "shim/shim_log.h"

namespace moat::shim {
namespace {

using namespace std::chrono_literals;
using Clock = LogLimiter::Clock;

LogLimiter::Limits limits(std::size_t per_kind, std::size_t total) {
  LogLimiter::Limits l;
  l.per_kind = per_kind;
  l.total = total;
  l.window = 1s;
  return l;
}

TEST(ShimLogLimiter, SimilarLinesBeyondTheLimitAreCountedAndSummarised) {
  LogLimiter lim(limits(3, 100));
  Clock::time_point t0{};
  std::size_t written = 0;
  for (int i = 0; i < 10; ++i) written += lim.admit("agent error: stream " + std::to_string(i), t0 + 10ms).size();
  EXPECT_EQ(written, 3u);
  // A different kind still gets through within the same second.
  EXPECT_EQ(lim.admit("stopping: signal received", t0 + 20ms), std::vector<std::string>{"stopping: signal received"});
  EXPECT_FALSE(lim.flush(t0 + 500ms));
  EXPECT_EQ(lim.summary_due(), t0 + 10ms + 1s);
  EXPECT_EQ(lim.flush(t0 + 1010ms), std::optional<std::string>("7 similar lines suppressed"));
  EXPECT_FALSE(lim.flush(t0 + 5s));
  EXPECT_FALSE(lim.summary_due());
}

TEST(ShimLogLimiter, TheSummaryPrecedesTheFirstLineOfTheNextWindow) {
  LogLimiter lim(limits(1, 100));
  Clock::time_point t0{};
  lim.admit("x 1", t0);
  lim.admit("x 2", t0);
  EXPECT_EQ(lim.admit("x 3", t0 + 2s), (std::vector<std::string>{"1 similar line suppressed", "x 3"}));
}

TEST(ShimLogLimiter, TextThatVariesEveryLineMeetsTheTotalLimit) {
  LogLimiter lim(limits(5, 20));
  Clock::time_point t0{};
  std::size_t written = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string varied(1, static_cast<char>('a' + i % 26));
    varied += std::string(1, static_cast<char>('a' + (i / 26) % 26)) + "-" + std::string(1, static_cast<char>('A' + i % 23));
    written += lim.admit(varied, t0).size();
  }
  EXPECT_EQ(written, 20u);
  EXPECT_EQ(lim.flush(t0, /*force=*/true), std::optional<std::string>("4980 similar lines suppressed"));
}

TEST(ShimLogLimiter, KindsIgnoreNumbersAndLongTails) {
  EXPECT_EQ(LogLimiter::kind_of("volume 12: read 4096 bytes"), LogLimiter::kind_of("volume 3: read 7 bytes"));
  EXPECT_EQ(LogLimiter::kind_of(std::string(48, 'a') + "x"), LogLimiter::kind_of(std::string(48, 'a') + "y"));
  EXPECT_NE(LogLimiter::kind_of("agent error: a"), LogLimiter::kind_of("agent error: b"));
}

TEST(ShimLogLine, GuestTextCannotForgeLinesOrEscapeSequences) {
  EXPECT_EQ(log_line_text("bad\nmoat-shim[x]: forged\x1b[31m"), "bad\\nmoat-shim[x]: forged?[31m");
  EXPECT_EQ(log_line_text("caf\xe9"), "caf\xef\xbf\xbd");
  std::string huge(100000, 'h');
  EXPECT_EQ(log_line_text(huge), std::string(kMaxShimLogLine, 'h') + "...");
}

}  // namespace
}  // namespace moat::shim
