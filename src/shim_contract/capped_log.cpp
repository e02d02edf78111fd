#include "shim_contract/capped_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

namespace moat::shim {
namespace {

int open_log(const std::string& path, int extra) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | extra, 0600);
}

// The size is asked of the file, not counted: other writers (a stray write
// to the shim's stderr, a second handle) append to it too.
std::uint64_t current_size(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The last `max_bytes` of a file.
std::string file_tail(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::size_t>(in.tellg());
  std::size_t start = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::string s(size - start, '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<std::size_t>(in.gcount()));
  return s;
}

}  // namespace

std::string rotated_log_path(const std::string& path) { return path + ".1"; }

Result<CappedLog> CappedLog::open(const std::string& path, std::uint64_t max_bytes, Start start) {
  CappedLog log;
  log.path_ = path;
  log.max_ = max_bytes < kMinLogBytes ? kMinLogBytes : max_bytes > kMaxLogBytes ? kMaxLogBytes : max_bytes;
  if (start == Start::kFresh) ::unlink(rotated_log_path(path).c_str());
  log.fd_.reset(open_log(path, start == Start::kFresh ? O_TRUNC : 0));
  if (!log.fd_) return errno_error("open " + path);
  // A file left over a larger cap (or by an older shim) starts a new one.
  if (current_size(log.fd_.get()) > log.max_ && !log.rotate()) return errno_error("rotate " + path);
  return log;
}

bool CappedLog::rotate() {
  if (::rename(path_.c_str(), rotated_log_path(path_).c_str()) != 0) {
    fd_.reset();
    return false;
  }
  fd_.reset(open_log(path_, O_TRUNC));
  if (!fd_) return false;
  if (on_reopen_) on_reopen_(fd_.get());
  return true;
}

void CappedLog::write(std::string_view data) {
  while (!data.empty() && fd_) {
    std::uint64_t size = current_size(fd_.get());
    // Whole if it fits in an empty file; otherwise what fits now.
    if (size + data.size() > max_ && (size > 0 && (data.size() <= max_ || size >= max_))) {
      if (!rotate()) return;
      size = 0;
    }
    std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), max_ - size));
    ssize_t n = ::write(fd_.get(), data.data(), chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string capped_log_tail(const std::string& path, std::size_t max_bytes) {
  std::string s = file_tail(path, max_bytes);
  if (s.size() < max_bytes) s = file_tail(rotated_log_path(path), max_bytes - s.size()) + s;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string capped_log_read_all(const std::string& path) {
  return read_file(rotated_log_path(path)) + read_file(path);
}

}  // namespace moat::shim
