#include "agent/shared_filesystems.h"

#include <fcntl.h>
#include <unistd.h>

#include "agent/small_file.h"
#include "agent/text_fields.h"

namespace moat::agent {
namespace {

// Far more than any guest's mount table (a line is ~100 bytes).
constexpr std::size_t kMaxMountsBytes = 4u << 20;

// "/a\040b" → "/a b": the kernel escapes space, tab, newline and backslash
// as a backslash and three octal digits; anything else stays as it is.
std::string unescape_octal(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  auto octal = [&](std::size_t k) { return field[k] >= '0' && field[k] <= '7'; };
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      int v = (field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0');
      if (v <= 0xff) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

}  // namespace

std::vector<std::string> virtiofs_mount_points(std::string_view text) {
  std::vector<std::string> points;
  for_each_line(text, [&](std::string_view line) {
    std::size_t at = 0;
    next_field(line, at);  // the source (the tag)
    std::string_view point = next_field(line, at);
    std::string_view type = next_field(line, at);
    if (type == "virtiofs" && !point.empty() && point[0] == '/') points.push_back(unescape_octal(point));
    return true;
  });
  return points;
}

int sync_shared_filesystems() {
  int failed = 0;
  for (const auto& point : virtiofs_mount_points(read_small_file("/proc/self/mounts", kMaxMountsBytes))) {
    int fd = ::open(point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || ::syncfs(fd) != 0) ++failed;
    if (fd >= 0) ::close(fd);
  }
  return failed;
}

}  // namespace moat::agent
