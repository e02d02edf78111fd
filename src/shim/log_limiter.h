// Rate limit for the shim's own log. Many of its lines quote the guest (an
// agent's error message, a volume's failure), so a hostile guest can make it
// write as fast as it can send frames; the cap on the file keeps the disk
// safe, this keeps the log readable: past a few similar lines a second, and
// past a total a second, lines are only counted, and the count is written
// once the second is over ("N similar lines suppressed").
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moat::shim {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  struct Limits {
    std::size_t per_kind = 5;   // similar lines per window
    std::size_t total = 50;     // all lines per window
    Clock::duration window = std::chrono::seconds(1);
  };

  LogLimiter() = default;
  explicit LogLimiter(Limits limits) : limits_(limits) {}

  // The lines to write for `line` logged at `now`: a summary of the previous
  // window's suppressions if it is over, then the line unless it is suppressed.
  std::vector<std::string> admit(std::string_view line, Clock::time_point now);

  // The summary of a window that is over (or of the current one, with
  // `force`), if it suppressed anything.
  std::optional<std::string> flush(Clock::time_point now, bool force = false);

  // When flush() next has something to say (nullopt: nothing pending).
  std::optional<Clock::time_point> summary_due() const;

  // Lines that differ only in numbers, or after their first 48 bytes, are
  // similar ("agent error: stream 7" and "agent error: stream 8").
  static std::string kind_of(std::string_view line);

 private:
  Limits limits_;
  Clock::time_point window_start_{};
  bool window_open_ = false;
  std::size_t admitted_ = 0;
  std::size_t suppressed_ = 0;
  std::map<std::string, std::size_t> per_kind_;
};

}  // namespace moat::shim
