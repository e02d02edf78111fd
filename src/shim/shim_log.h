// The shim's own log (shim.log): its stdout and stderr, capped and rotated
// (capped_log.h), rate limited (log_limiter.h), each line bounded and made
// printable because much of it quotes the guest. Thread-safe: the volume
// servers log from their own threads.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "shim_contract/capped_log.h"
#include "shim/log_limiter.h"

namespace moat::shim {

// The most of one logged line that is kept.
inline constexpr std::size_t kMaxShimLogLine = 2048;

class ShimLog {
 public:
  // `prefix` starts every line ("moat-shim[<id>]: ").
  ShimLog(std::string prefix, LogLimiter::Limits limits = {});

  // Opens the file (kept across boots) and makes the process's stdout and
  // stderr follow it, so nothing else written there escapes the cap. If it
  // cannot be opened, lines go nowhere rather than grow an uncapped file.
  Status open(const std::string& path, std::uint64_t max_bytes);

  void line(const std::string& text);
  // Writes the count of suppressed lines once their window is over (at
  // once with `force`, when the shim ends).
  void flush(bool force = false);
  // Milliseconds until flush() has something to write; -1 if nothing is pending.
  int flush_due_ms();

 private:
  void write_locked(const std::string& text);

  std::mutex mu_;
  std::string prefix_;
  CappedLog file_;
  LogLimiter limiter_;
};

// `text` as one log line: a newline becomes "\n" and other control
// characters '?' (the guest cannot forge lines), invalid UTF-8 U+FFFD, at most
// kMaxShimLogLine bytes of the text.
std::string log_line_text(const std::string& text);

}  // namespace moat::shim
