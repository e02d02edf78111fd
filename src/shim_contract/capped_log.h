// A log file the guest can fill: it never grows past a size cap. When a write
// would take it over, the file becomes `<path>.1` (replacing the previous
// generation) and a new one starts, so at most two caps of disk are used
// whatever the guest does, and the newest text is always kept.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::shim {

// The smallest and largest cap a sandbox may configure, and the default.
inline constexpr std::uint64_t kMinLogBytes = 4096;
inline constexpr std::uint64_t kMaxLogBytes = 1ull << 30;
inline constexpr std::uint64_t kDefaultLogBytes = 1ull << 20;

// The older generation of a capped log.
std::string rotated_log_path(const std::string& path);

class CappedLog {
 public:
  enum class Start { kAppend, kFresh };  // keep what is there / begin empty (both generations)

  CappedLog() = default;
  static Result<CappedLog> open(const std::string& path, std::uint64_t max_bytes, Start start);

  bool is_open() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }

  // Appends `data`, rotating first if it would not fit. Text longer than the
  // cap is spread over rotations, so only its last cap's worth survives.
  // Best effort: an I/O error drops the text (a full disk must not stop the
  // shim), and a failed rotation stops the log rather than let it grow.
  void write(std::string_view data);

  // Called with the new descriptor after each rotation (the shim makes its
  // stderr follow its own log this way).
  void on_reopen(std::function<void(int)> fn) { on_reopen_ = std::move(fn); }

 private:
  bool rotate();

  std::string path_;
  std::uint64_t max_ = kDefaultLogBytes;
  UniqueFd fd_;
  std::function<void(int)> on_reopen_;
};

// The last `max_bytes` of a capped log, reaching into the older generation
// when the current one holds less; trailing newlines removed.
std::string capped_log_tail(const std::string& path, std::size_t max_bytes);

// Both generations, oldest first (for `moat logs`).
std::string capped_log_read_all(const std::string& path);

}  // namespace moat::shim
