#include "shim/shim_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "proto/text.h"

namespace moat::shim {

std::string log_line_text(const std::string& text) {
  std::string out;
  for (char c : std::string_view(text).substr(0, kMaxShimLogLine)) {
    if (c == '\n') out += "\\n";
    else out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
  }
  out = proto::lossy_utf8(out);
  if (text.size() > kMaxShimLogLine) out += "...";
  return out;
}

ShimLog::ShimLog(std::string prefix, LogLimiter::Limits limits) : prefix_(std::move(prefix)), limiter_(limits) {}

Status ShimLog::open(const std::string& path, std::uint64_t max_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  auto redirect = [](int fd) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
  };
  auto file = CappedLog::open(path, max_bytes, CappedLog::Start::kAppend);
  if (!file) {
    // The launcher's descriptor for the same file would grow without a cap.
    int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
      redirect(null);
      ::close(null);
    }
    return file.error();
  }
  file_ = std::move(*file);
  redirect(file_.fd());
  file_.on_reopen(redirect);
  return ok_status();
}

void ShimLog::write_locked(const std::string& text) {
  std::string line = prefix_ + text + "\n";
  if (file_.is_open()) {
    file_.write(line);
  } else {
    // Not opened yet (the launcher's descriptor, for the line saying why the
    // shim gives up) or not openable (stderr is /dev/null then).
    ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    (void)n;
  }
}

void ShimLog::line(const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& l : limiter_.admit(log_line_text(text), LogLimiter::Clock::now())) write_locked(l);
}

void ShimLog::flush(bool force) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto summary = limiter_.flush(LogLimiter::Clock::now(), force)) write_locked(*summary);
}

int ShimLog::flush_due_ms() {
  std::lock_guard<std::mutex> lock(mu_);
  auto due = limiter_.summary_due();
  if (!due) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*due - LogLimiter::Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<long long>(left + 1, 1 << 30));
}

}  // namespace moat::shim
