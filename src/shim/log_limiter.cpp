#include "shim/log_limiter.h"

namespace moat::shim {
namespace {

constexpr std::size_t kKindBytes = 48;
// Distinct kinds remembered per window: beyond it every new kind counts as
// one, so a guest that varies its text cannot grow the map.
constexpr std::size_t kMaxKinds = 256;
const std::string kOtherKinds = "\x01other";

}  // namespace

std::string LogLimiter::kind_of(std::string_view line) {
  std::string kind;
  bool in_number = false;
  for (char c : line) {
    if (kind.size() >= kKindBytes) break;
    bool digit = c >= '0' && c <= '9';
    if (digit && in_number) continue;
    in_number = digit;
    kind += digit ? '#' : c;
  }
  return kind;
}

std::optional<std::string> LogLimiter::flush(Clock::time_point now, bool force) {
  if (!window_open_ || (!force && now - window_start_ < limits_.window)) return std::nullopt;
  std::size_t n = suppressed_;
  window_open_ = false;
  admitted_ = suppressed_ = 0;
  per_kind_.clear();
  if (n == 0) return std::nullopt;
  return std::to_string(n) + " similar line" + (n == 1 ? "" : "s") + " suppressed";
}

std::optional<LogLimiter::Clock::time_point> LogLimiter::summary_due() const {
  if (!window_open_ || suppressed_ == 0) return std::nullopt;
  return window_start_ + limits_.window;
}

std::vector<std::string> LogLimiter::admit(std::string_view line, Clock::time_point now) {
  std::vector<std::string> out;
  if (auto summary = flush(now)) out.push_back(std::move(*summary));
  if (!window_open_) {
    window_open_ = true;
    window_start_ = now;
  }
  std::string kind = kind_of(line);
  if (per_kind_.size() >= kMaxKinds && !per_kind_.count(kind)) kind = kOtherKinds;
  std::size_t& seen = per_kind_[kind];
  ++seen;
  if (seen > limits_.per_kind || admitted_ >= limits_.total) {
    ++suppressed_;
    return out;
  }
  ++admitted_;
  out.emplace_back(line);
  return out;
}

}  // namespace moat::shim
